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
from bot.addins import AuditEntry, RoomInfo
from bot.commands.registry import Link
from bot.errors import CommandError
from bot.inbound import Transport
from bot.metrics import METRICS
from bot.offload import offload
from bot.rooms import Arrival, Occupant, Rooms

log = logging.getLogger(__name__)

# How often the audit log is read for changes made elsewhere (the command line, another
# process): they are announced, and answers kept from before them dropped, this soon.
POLL_S = 0.5
CLAIM_BATCH = 500  # joiners of one room noted as told in one transaction, at most


def attached_sentence(name: str, url: str) -> str:
    return f"This room's add-in is now “{name}”: {url}"


def detached_sentence(name: str | None, *, unregistered: bool = False) -> str:
    if unregistered and name:
        return f"This room no longer has an add-in: “{name}” was unregistered."
    return "This room no longer has an add-in."


class Announcer:
    def __init__(
        self, engine: Engine, transport: Transport, rooms: Rooms, *, cooldown_s: int,
        on_membership: Callable[[AuditEntry], None], on_changes: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.transport = transport
        self.rooms = rooms
        self.cooldown_s = cooldown_s
        self.on_membership = on_membership  # join/leave changes, for the bot to carry out
        self.on_changes = on_changes  # the follower found changes, whoever made them
        self.cursor = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._commits_seen = -1  # addins.commits() when the changes were last read
        self._arrivals: dict[str, list[Occupant]] = {}  # joiners waiting to be claimed
        self._claiming: set[str] = set()  # rooms whose joiners are being claimed

    async def start(self) -> None:
        self.cursor = await offload(addins.last_audit_id, self.engine)
        self._task = asyncio.create_task(self._follow(), name="announcer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def poke(self) -> None:
        """A command was answered: if anything was committed since the last look, look now
        rather than at the next poll. (After a read there is nothing to look for, and a look
        is a database query on a worker thread, competing with the next command.)"""
        if addins.commits() != self._commits_seen:
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
        self._commits_seen = addins.commits()
        while True:
            changes = await offload(addins.changes_since, self.engine, self.cursor)
            if changes:
                self.on_changes()
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
            METRICS.announcement("room")
        elif change.action == "update-url" and change.pool:
            # Found by the URL, not the name: the add-in may have been renamed since. If the
            # URL changed again meanwhile, nothing matches and the later row announces it.
            rooms = await offload(addins.list_rooms, self.engine, pool=change.pool)
            for info in rooms:
                if info.url == change.detail and self.rooms.is_live(info.jid):
                    self._say_attached(info)

    async def _tell_room(self, room: str) -> None:
        if not self.rooms.is_live(room):
            return
        self._say_attached(await offload(addins.room_info, self.engine, room))

    def _say_attached(self, info: RoomInfo) -> None:
        if info.addin is not None and info.url is not None:
            self.transport.send_room(
                info.jid, attached_sentence(info.addin, info.url), Link(info.url, info.addin)
            )
            METRICS.announcement("room")

    async def arrival(self, arrival: Arrival) -> None:
        """Tell a participant who just joined the room's add-in, unless told recently.

        Joiners are claimed in batches, one transaction per room at a time: a lone joiner at
        once, and in a join storm those who arrive meanwhile together next, rather than one
        write each queueing on the database's write lock."""
        room = arrival.room
        self._arrivals.setdefault(room, []).append(arrival.occupant)
        if room in self._claiming:
            return  # the task claiming for this room takes it with its next batch
        self._claiming.add(room)
        try:
            while waiting := self._arrivals.get(room):
                batch, waiting[:] = waiting[:CLAIM_BATCH], waiting[CLAIM_BATCH:]
                await self._tell_joiners(room, batch)
        finally:
            self._arrivals.pop(room, None)
            self._claiming.discard(room)

    async def _tell_joiners(self, room: str, joiners: list[Occupant]) -> None:
        try:
            info, due = await offload(
                addins.claim_announcements, self.engine, room=room,
                people=[occupant.person for occupant in joiners], cooldown_s=self.cooldown_s,
            )
        except CommandError as exc:  # the database is away: these joiners go untold
            log.warning("cannot tell %d joiner(s) of %s: %s", len(joiners), room, exc)
            return
        except Exception:  # logged; the joiners queued behind them are still told
            log.exception("telling %d joiner(s) of %s failed", len(joiners), room)
            return
        if info is None or info.addin is None or info.url is None:
            return
        sentence, link = attached_sentence(info.addin, info.url), Link(info.url, info.addin)
        untold = set(due)
        for occupant in joiners:
            if occupant.person in untold:  # once per person, whichever of their nicks
                untold.discard(occupant.person)
                self.transport.send_private(room, occupant.nick, sentence, link)
                METRICS.announcement("joiner")
