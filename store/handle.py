"""`Store`: the handle the rest of the bot holds: open from a URL, migrate, check, close,
and run a change or a read. Nothing outside store/ sees SQLAlchemy."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import ParamSpec, TypeVar

from sqlalchemy import Connection, Engine

from bot.values import Done
from store import migrate, unit
from store.database import make_engine

_T = TypeVar("_T")
_P = ParamSpec("_P")
WORKERS = 8  # threads for blocking database work, per store
SETTLE_S = 10.0


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._workers: concurrent.futures.ThreadPoolExecutor | None = None
        self._running: set[concurrent.futures.Future[object]] = set()

    @classmethod
    def open(cls, url: str, *, connect_timeout: float | None = None) -> Store:
        """Connections are made when first used: opening never fails on an unreachable
        server (`problem` says whether it answers)."""
        return cls(make_engine(url, connect_timeout=connect_timeout))

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=False)

    def close(self) -> None:
        if self._workers is not None:
            self._workers.shutdown(wait=True)
            self._workers = None
        self.engine.dispose()

    # --- blocking work, off the event loop --------------------------------------------------

    async def run(self, call: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run blocking `call` (a query, a change) on one of this store's threads and wait
        for it without blocking the loop. Like asyncio.to_thread, but the calls still
        running are known: `settle` waits for them before the store is closed, so a
        cancelled command's query is not cut off mid-way."""
        if self._workers is None:
            self._workers = concurrent.futures.ThreadPoolExecutor(
                max_workers=WORKERS, thread_name_prefix="addinbot-store"
            )
        context = contextvars.copy_context()
        future = self._workers.submit(context.run, functools.partial(call, *args, **kwargs))
        self._running.add(future)  # type: ignore[arg-type]
        future.add_done_callback(self._running.discard)
        return await asyncio.wrap_future(future)

    async def settle(self) -> None:
        """Wait (without blocking the loop, at most SETTLE_S) until every call made with
        `run` has finished."""
        running = list(self._running)
        if running:
            await asyncio.to_thread(concurrent.futures.wait, running, SETTLE_S)

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


