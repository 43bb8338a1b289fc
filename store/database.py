"""Engines and sessions: SQLite (WAL, busy timeout, foreign keys) or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
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
    # begins deferred and, in WAL mode, never waits for a writer.
    if connection.get_execution_options().get(_READ_ONLY):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


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
