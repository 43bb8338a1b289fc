"""One process per SQLite file: `run` holds an exclusive lock on a file beside the database.

The lock is fcntl's (flock): the kernel drops it when the process ends, however it ends
(SIGKILL included), so a stale lock never keeps the bot from starting. SQLite's own locks
cannot say this: they are taken per transaction, and two bots on one file would both work,
each announcing every joiner and answering every message."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url


class SoleUse:
    """Held by the running bot; `close` (or the process's end) releases it."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def lock_path(url: str) -> Path | None:
    """The lock file of a SQLite database file; None for PostgreSQL or an in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(f"{parsed.database}.lock")


def take(url: str) -> SoleUse:
    """Take the database for this process alone; OSError carries the one line to print when
    another process holds it."""
    path = lock_path(url)
    if path is None:
        return SoleUse(None)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OSError(
            f"another addinbot is running on {path.with_suffix('').absolute()} (SQLite serves "
            "one process; share the rooms between processes on PostgreSQL)"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return SoleUse(fd)
