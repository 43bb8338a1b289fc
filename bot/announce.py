"""Telling rooms and participants about add-ins.

Every change is a row in the audit log, whoever made it (chat, the command line, another
process); the follower reads new rows and says in each affected room what changed, so a
change made outside the running bot is announced just the same. Participants who join a
room with an add-in are told privately, at most once per cool-down unless it changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy import Engine

from bot import addins
from bot.addins import AuditEntry
from bot.commands.registry import Link
from bot.errors import CommandError
from bot.inbound import Transport
from bot.rooms import Arrival, Rooms

log = logging.getLogger(__name__)

POLL_S = 2.0


def attached_sentence(name: str, url: str) -> str:
    return f"This room's add-in is now “{name}”: {url}"


def detached_sentence(name: str | None, *, unregistered: bool = False) -> str:
    if unregistered and name:
        return f"This room no longer has an add-in: “{name}” was unregistered."
    return "This room no longer has an add-in."


class Announcer:
    def __init__(
        self, engine: Engine, transport: Transport, rooms: Rooms, *, cooldown_s: int,
        on_membership: Callable[[AuditEntry], None],
    ) -> None:
        self.engine = engine
        self.transport = transport
        self.rooms = rooms
        self.cooldown_s = cooldown_s
        self.on_membership = on_membership  # join/leave changes, for the bot to carry out
        self.cursor = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.cursor = await asyncio.to_thread(addins.last_audit_id, self.engine)
        self._task = asyncio.create_task(self._follow(), name="announcer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def poke(self) -> None:
        """Something changed here: look now rather than at the next poll."""
        self._wake.set()

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)
            self._wake.clear()
            try:
                await self.catch_up()
            except CommandError as exc:  # the database is away; try again at the next poll
                log.warning("cannot read changes: %s", exc)
            except Exception:
                log.exception("announcing changes failed")

    async def catch_up(self) -> None:
        while True:
            changes = await asyncio.to_thread(addins.changes_since, self.engine, self.cursor)
            for change in changes:
                self.cursor = change.id
                await self._announce(change)
            if len(changes) < 500:
                return

    async def _announce(self, change: AuditEntry) -> None:
        if change.action in ("join", "leave"):
            self.on_membership(change)
        elif change.action == "attach" and change.room:
            await self._tell_room(change.room)
        elif change.action == "detach" and change.room and self.rooms.is_live(change.room):
            unregistered = change.detail == addins.FORCED_DETACH
            self.transport.send_room(
                change.room, detached_sentence(change.addin, unregistered=unregistered)
            )
        elif change.action == "update-url" and change.pool and change.addin:
            try:
                info = await asyncio.to_thread(
                    addins.show, self.engine, pool=change.pool, name=change.addin
                )
            except CommandError:
                return  # renamed or removed since; later rows say what became of it
            for room in info.rooms:
                await self._tell_room(room)

    async def _tell_room(self, room: str) -> None:
        if not self.rooms.is_live(room):
            return
        info = await asyncio.to_thread(addins.room_info, self.engine, room)
        if info.addin is not None and info.url is not None:
            self.transport.send_room(
                room, attached_sentence(info.addin, info.url), Link(info.url, info.addin)
            )

    async def arrival(self, arrival: Arrival) -> None:
        """Tell a participant who just joined the room's add-in, unless told recently."""
        occupant = arrival.occupant
        info = await asyncio.to_thread(
            addins.claim_announcement, self.engine, room=arrival.room,
            person=occupant.person, cooldown_s=self.cooldown_s,
        )
        if info is None or info.addin is None or info.url is None:
            return
        self.transport.send_private(
            arrival.room, occupant.nick, attached_sentence(info.addin, info.url),
            Link(info.url, info.addin),
        )
