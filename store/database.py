"""Engines and sessions: SQLite (WAL, busy timeout, foreign keys) or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

SQLITE_BUSY_TIMEOUT_MS = 5000
_READ_ONLY = "addinbot_read_only"  # an execution option: this connection only reads


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite connections get WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            # The connection used last is used next: each SQLite connection has a page cache
            # of its own, emptied whenever another connection writes. Taken in turn (the
            # default), every write made the next connection's cache cold: a write and a
            # read 392 -> 327 µs with five connections pooled.
            pool_use_lifo=True,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        # Let SQLAlchemy's "BEGIN" be real, so a write transaction takes its lock up front.
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level; transactions are begun explicitly in _sqlite_begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # A writer takes the write lock up front, so writers queue on the busy timeout; a reader
    # begins deferred and, in WAL mode, never waits for a writer. Said to the driver itself:
    # through SQLAlchemy's execution the BEGIN cost an attach ~0.05-0.14 ms more (in-process
    # A/B, the two ways taking turns every 0.1 s).
    begin = "BEGIN" if connection.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE"
    try:
        connection.connection.driver_connection.execute(begin)
    except connection.dialect.loaded_dbapi.Error as exc:
        raise driver_error(connection, begin, exc) from exc


def driver_error(connection: Connection, statement: str, exc: Any) -> Exception:
    """What SQLAlchemy makes of a driver's exception for a statement run on the driver
    directly: its own class for it (OperationalError for "database is locked", IntegrityError,
    ...), the connection invalidated if the error says it is gone (the pool must not hand it
    out again)."""
    dialect = connection.dialect
    gone = dialect.is_disconnect(exc, connection.connection.dbapi_connection, None)
    if gone:
        connection.invalidate(exc)
    wrapped: Exception = DBAPIError.instance(
        statement, None, exc, dialect.loaded_dbapi.Error, connection_invalidated=gone,
        dialect=dialect,
    )
    return wrapped


def read_session(engine: Engine) -> Session:
    """A session that only reads: on SQLite it takes no write lock."""
    return Session(engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False)


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for plain (Core) queries that only read, rolled back when the block
    ends; on SQLite it takes no write lock. A fraction of a session's cost per use: the
    reads the bot does for every command go this way."""
    with engine.connect() as connection:
        connection.execution_options(**{_READ_ONLY: True})
        yield connection


def database_problem(engine: Engine) -> str | None:
    """None when the database answers a trivial query, else what went wrong (blocking)."""
    try:
        with read_session(engine) as session:  # a reader: never waits on a writer's lock
            session.connection().exec_driver_sql("SELECT 1")
    except Exception as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return f"database: {type(exc).__name__}: {first[0][:200] if first else ''}".rstrip(": ")
    return None
