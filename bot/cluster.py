"""Several processes on one PostgreSQL database: which rooms this one serves, and whether it
holds the desk (answers what is sent to the bot's bare JID). README: "Several processes".

Every `renew_s` the process renews its leases in one transaction on a store thread
(store.leases.tick) and is told what it holds: it serves exactly those rooms. A lease lasts
`lease_s` by the database's clock from the start of the transaction that renewed it, which
began after the moment taken here before asking; so once `lease_s - renew_s` has passed
here since the last renewal that came back, this process stops serving everything (the
watchdog, on the loop, whatever the database thread is doing), a whole `renew_s` before any
other process may take its rooms. Two processes never serve one room on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from bot.config import Settings
from store import Store, leases

log = logging.getLogger(__name__)

RELEASE_S = 2.0  # a clean stop waits this long at most to give its leases back
# After saying it is there, a process waits this long (at most renew_s) before taking its
# share: processes coming online within it of each other (started together, or back after
# the server restarted) each take their share at once; a later one moves rooms.
SETTLE_S = 1.0


class Cluster:
    """All of its state is the loop's. `serve(rooms, fresh, since)` is told the rooms to be
    in (`fresh`: never served before by any process; `since`: the last change committed
    before the rooms new to it were taken); `on_desk(bool)` whether to answer the bot's bare
    JID."""

    def __init__(
        self, settings: Settings, store: Store, *, me: str,
        serve: Callable[[frozenset[str], frozenset[str], int], None],
        on_desk: Callable[[bool], None],
    ) -> None:
        self.settings = settings
        self.store = store
        self.me = me
        self.lease_s = settings.cluster.lease_s
        self.renew_s = settings.cluster.renew_s
        self.serve = serve
        self.on_desk = on_desk
        self.online = False
        self.rooms: frozenset[str] = frozenset()
        self.desk = False
        self._ended: set[str] = set()  # processes whose XMPP session the server ended
        self._leaving: set[str] = set()  # rooms given up and left: freed by the next beat
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self._safe_until = 0.0  # loop time: the leases held are vouched for until then

    async def start(self) -> None:
        self._task = asyncio.create_task(self._beat(), name="leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._drop("stopping")
        with contextlib.suppress(Exception):  # else they run out after lease_s
            async with asyncio.timeout(RELEASE_S):
                await self.store.run(leases.release, self.store, me=self.me)

    def poke(self) -> None:
        """Look now (a room joined or left, the stream up or down), not at the next beat."""
        self._wake.set()

    def set_online(self, online: bool) -> None:
        self.online = online
        if not online:
            self._drop("the XMPP stream is down")
        self.poke()

    def sibling(self, resource: str, available: bool) -> None:
        """Another process's XMPP session (resource `<xmpp.resource>-<id>`) came or ended.
        One that ended is out of every room (the server took it out), so its leases are
        freed at the next beat, now, rather than when they run out: a SIGKILLed process's
        rooms are served again within a beat and their joins."""
        prefix = f"{self.settings.xmpp.resource}-" if self.settings.xmpp is not None else "-"
        process = resource.removeprefix(prefix)
        if process == resource or process == self.me:
            return
        if available:
            self._ended.discard(process)
        else:
            log.info("process %s left the XMPP server: taking its rooms over", process)
            self._ended.add(process)
            self.poke()

    async def _beat(self) -> None:
        """A renewal every `renew_s` from the start of the last (not from its end: a slow
        one, waiting for the others' turns, must not push the next past the watchdog); at
        once when poked. The first once online (at start, and after the XMPP stream was
        down) only says this process is there (leases.tick `take`), and the next comes
        SETTLE_S later (at most `renew_s`), poked or not: processes coming online together
        (started together, or back after the server restarted) each take their share
        rather than the first taking every room and handing most back."""
        loop = asyncio.get_running_loop()
        registered = False
        while True:
            asked = loop.time()
            ended, left = frozenset(self._ended), frozenset(self._leaving)
            online = self.online  # (it may change while the tick runs on its thread)
            registering = online and not registered
            try:
                held = await self.store.run(
                    leases.tick, self.store, me=self.me, lease_s=self.lease_s,
                    served=self.settings.rooms.autojoin, pools=self.settings.pools.names,
                    serving=online, ended=ended, left=left, take=not registering,
                )
            except Exception as exc:  # the database is away: the watchdog stops us in time
                log.warning("cannot renew the leases: %s", _first_line(exc))
            else:
                self._ended -= ended
                self._leaving -= left
                registered = online  # offline, it said it is gone: it says so again
                safe_until = asked + self.lease_s - self.renew_s
                if self.online and loop.time() < safe_until:
                    self._safe_until = safe_until
                    self._arm(safe_until)
                    self._apply(held)
            if registering and registered:
                # Said it is there: time for processes started with it to say so too before
                # anyone takes a share (a poke meanwhile — its own joins, its stream coming
                # up — would have it take every room, then hand most back).
                await asyncio.sleep(max(0.0, asked + min(self.renew_s, SETTLE_S) - loop.time()))
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(asked + self.renew_s):
                        await self._wake.wait()
            self._wake.clear()

    def _arm(self, when: float) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        self._watchdog = asyncio.get_running_loop().call_at(
            when, self._drop, "the leases could not be renewed in time"
        )

    def _apply(self, held: leases.Held) -> None:
        if held.rooms != self.rooms:
            log.info("serving %d room(s); %d process(es) share them (+%d, -%d)",
                     len(held.rooms), held.processes, len(held.rooms - self.rooms),
                     len(self.rooms - held.rooms))
        self.rooms = held.rooms
        self.serve(held.rooms, held.fresh, held.since)  # out of those given up, before freed
        if held.leaving - self._leaving:  # freed at once, not a beat later: a shorter gap
            self.poke()
        self._leaving |= held.leaving
        if held.desk != self.desk:
            self.desk = held.desk
            log.info("%s the desk (direct messages to the bot's bare JID)",
                     "holding" if held.desk else "no longer holding")
            self.on_desk(held.desk)

    async def holder(self, room: str) -> str | None:
        """The process serving `room` now (its lease), if any; None when unknown."""
        try:
            return await self.store.run(leases.holder, self.store, room=room)
        except Exception as exc:  # the database is away: nobody to hand it to
            log.warning("cannot read who serves %s: %s", room, exc)
            return None

    async def others(self) -> frozenset[str]:
        """The other processes serving rooms now; none when that cannot be read."""
        try:
            return await self.store.run(leases.processes, self.store) - {self.me}
        except Exception as exc:  # the database is away: nobody else to ask
            log.warning("cannot read which processes serve rooms: %s", _first_line(exc))
            return frozenset()

    def vouched(self) -> bool:
        """Whether this process may act now: its leases were renewed recently enough. (A
        process frozen for a while, then woken, reads what waited in its socket before its
        watchdog's turn comes: this is asked first.)"""
        return asyncio.get_running_loop().time() < self._safe_until

    def _drop(self, why: str) -> None:
        """Serve nothing (no lease can be vouched for now)."""
        self._safe_until = 0.0
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self.rooms or self.desk:
            log.warning("no longer serving %d room(s)%s: %s", len(self.rooms),
                        " nor holding the desk" if self.desk else "", why)
        self.rooms = frozenset()
        self.serve(frozenset(), frozenset(), 0)
        if self.desk:
            self.desk = False
            self.on_desk(False)


def _first_line(exc: Exception) -> str:
    """What went wrong, in a line (SQLAlchemy's errors carry the statement and its
    parameters: megabytes for a tick at thousands of rooms)."""
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]
