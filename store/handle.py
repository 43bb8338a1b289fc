"""`Store`: the handle the rest of the bot holds: open from a URL, migrate, check, close,
and run a change or a read. Nothing outside store/ sees SQLAlchemy."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeVar

from sqlalchemy import Connection, Engine

from bot.values import Done
from store import migrate, unit
from store.database import make_engine

_T = TypeVar("_T")


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str, *, connect_timeout: float | None = None) -> Store:
        """Connections are made when first used: opening never fails on an unreachable
        server (`problem` says whether it answers)."""
        return cls(make_engine(url, connect_timeout=connect_timeout))

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=False)

    def close(self) -> None:
        self.engine.dispose()

    def upgrade(self) -> None:
        """Bring the schema to the latest revision (blocking); a no-op when it is there."""
        migrate.upgrade(self.engine)

    def schema(self) -> tuple[str | None, str | None]:
        """The schema's revision (None: no schema yet) and the one this version needs."""
        return migrate.current_revision(self.engine), migrate.head(self.engine)

    def problem(self) -> str | None:
        """None when the database answers a trivial query, else what went wrong (blocking;
        a reader, so it never waits on a writer's lock)."""
        try:
            with unit.reading(self.engine) as rows:
                rows.exec_driver_sql("SELECT 1")
        except Exception as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            first = str(getattr(cause, "orig", None) or cause).strip().splitlines()
            name = type(cause).__name__
            return f"database: {name}: {first[0][:200] if first else ''}".rstrip(": ")
        return None

    def write(
        self, change: Callable[[unit.Unit], _T], *, conflict: str | None = None,
        audited: bool = True,
    ) -> Done[_T]:
        return unit.write(self.engine, change, conflict=conflict, audited=audited)

    def reading(self) -> AbstractContextManager[Connection]:
        return unit.reading(self.engine)


