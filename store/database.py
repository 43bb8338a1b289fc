"""Engines: SQLite (WAL, busy timeout, foreign keys) or PostgreSQL, and what a URL names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_MS = 5000
READ_ONLY = "addinbot_read_only"  # an execution option: this connection only reads


def make_engine(url: str, *, connect_timeout: float | None = None) -> Engine:
    """An engine for `url`; SQLite connections get WAL, a busy timeout and foreign keys.
    `connect_timeout`: give up connecting to a server after this long (PostgreSQL)."""
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            # The connection used last is used next: each SQLite connection has a page cache
            # of its own, emptied whenever another connection writes. Taken in turn (the
            # default), every write made the next connection's cache cold: a write and a
            # read 392 -> 327 µs with five connections pooled.
            pool_use_lifo=True,
        )
        # SQLAlchemy's documented recipe for pysqlite ("Serializable isolation / Savepoints
        # / Transactional DDL"): the driver begins nothing itself; SQLAlchemy's "begin" says
        # BEGIN, so a write transaction takes its lock up front.
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    connect_args = {"connect_timeout": max(1, round(connect_timeout))} if connect_timeout else {}
    return create_engine(
        url, pool_pre_ping=True, pool_size=5, max_overflow=5, connect_args=connect_args
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun in _sqlite_begin
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # A writer takes the write lock up front, so writers queue on the busy timeout; a reader
    # begins deferred and, in WAL mode, never waits for a writer.
    reader = connection.get_execution_options().get(READ_ONLY)
    connection.exec_driver_sql("BEGIN" if reader else "BEGIN IMMEDIATE")


def shown(url: str) -> str:
    """The URL as it may be shown: without its password."""
    return make_url(url).render_as_string(hide_password=True)


def missing_sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL when it does not exist yet (opening would create it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path.absolute()
