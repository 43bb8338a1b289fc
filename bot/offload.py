"""Blocking work (the database) off the event loop, on threads the bot can wait for.

Like asyncio.to_thread, but the calls still running are known: when the bot stops, it waits
for them before closing the database, so a cancelled command's query is not cut off mid-way
and no connection is left to the garbage collector.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")

_EXECUTOR = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="addinbot")
_RUNNING: set[concurrent.futures.Future[object]] = set()


async def offload(call: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    context = contextvars.copy_context()
    future = _EXECUTOR.submit(context.run, functools.partial(call, *args, **kwargs))
    _RUNNING.add(future)  # type: ignore[arg-type]
    future.add_done_callback(_RUNNING.discard)
    return await asyncio.wrap_future(future)


SETTLE_S = 10.0


async def settle() -> None:
    """Wait (without blocking the loop, at most SETTLE_S) until every offloaded call has
    finished."""
    running = list(_RUNNING)
    if running:
        await asyncio.to_thread(concurrent.futures.wait, running, SETTLE_S)
