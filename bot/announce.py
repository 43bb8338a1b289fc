"""Telling rooms and participants about add-ins.

Every change is a row in the audit log, whoever made it (chat, the command line, another
process); the follower reads new rows and says in each affected room what changed, so a
change made outside the running bot is announced just the same. Participants who join a
room with an add-in are told privately, at most once per cool-down unless it changed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from bot import addins, policy, subject
from bot.commands.text import (
    attached_sentence,
    detached_sentence,
    goodbye_sentence,
    subject_tail,
    welcome_sentence,
)
from bot.errors import CommandError
from bot.i18n import ENGLISH, Tr
from bot.metrics import METRICS
from bot.rooms import Arrival, Occupant, Rooms
from bot.values import AuditEntry, Change, Link, RoomInfo, Transport
from store import Store

log = logging.getLogger(__name__)

# How often the audit log is read for changes made elsewhere (the command line, another
# process): they are announced, and answers kept from before them dropped, this soon.
POLL_S = 0.5
READ_BATCH = 500  # changes read in one look, at most
CLAIM_BATCH = 500  # joiners of one room noted as told in one transaction, at most
# Changes after which a pinned room's subject tail is put on, changed or taken off.
PINNED_CHANGES = frozenset({"attach", "update-url", "detach", "pin"})


class Announcer:
    """Follows the audit log. Reading it is blocking work for a database thread; taking in
    what was read and saying it is done on the loop, in audit order (`announce`).

    Changes this process commits come back with the operation that made them, with the rooms
    they concern, and are handed over on the loop (`handed`): a command's change is said as
    soon as the command has answered, with no trip to the database (none racing the
    sender's next command for it). Everything else (the command line, another process) is
    read at the next poll, or at once after a `poke` when a handed change does not follow on
    from the last one taken in. All of its state is the loop's."""

    def __init__(
        self, store: Store, transport: Transport, rooms: Rooms, *, cooldown_s: int,
        on_membership: Callable[[AuditEntry], None], on_changes: Callable[[], None],
        tr: Tr = ENGLISH, shared: bool = False, own_jid: str | None = None,
        announces: Callable[[str, int], bool] = lambda _room, _change: True,
        pin: bool = False, learn_config: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.tr = tr  # the rooms' language (rooms.lang): room messages and joiners' links
        self.transport = transport
        self.rooms = rooms
        self.cooldown_s = cooldown_s
        self.pin = pin  # announce.pin: the subject pin of rooms that did not choose
        # Asks a room whether occupants may change its subject, where not known.
        self.learn_config = learn_config
        # The subject pin, per room: the tail the bot last wrote on the subject (what it
        # may take off), the tail the subject should carry (None: none), and whether the
        # bot's last act there was putting the tail back after a person's change.
        self._written: dict[str, str | None] = {}
        self._wanted: dict[str, str | None] = {}
        self._put_back: set[str] = set()
        self.on_membership = on_membership  # join/leave changes, for the bot to carry out
        self.on_changes = on_changes  # changes were taken in, whoever made them
        # Several processes (cluster.enabled): a room may pass to another process, which
        # tells those present who were not told (see `present`). So those who saw an
        # announcement in the room are noted as told, and the bot's other processes (its
        # own JID) are never anyone to tell.
        self.shared = shared
        self.own_jid = own_jid
        self.announces = announces  # (room, audit id): this process's to say there?
        self._noting: set[asyncio.Task[None]] = set()
        self.cursor = 0  # the last change announced
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._read_to = 0  # every change up to this id is taken in (queued or announced)
        # Handed over by this process but not following on from _read_to (a change made
        # elsewhere comes between, or an id was skipped): kept until a read fills the gap.
        self._early: dict[int, Change] = {}
        self._read: collections.deque[Change] = collections.deque()  # taken in, not said
        self._writes: set[asyncio.Task[None]] = set()
        # Who asked not to be sent the link on joining (`mute`): (room or ALL_ROOMS, person),
        # as stored, followed from the audit log. Kept here, a joiner costs no look.
        self._muted: set[tuple[str, str]] = set()
        self._arrivals: dict[str, list[Occupant]] = {}  # joiners waiting to be claimed
        self._claiming: set[str] = set()  # rooms whose joiners are being claimed

    async def start(self) -> None:
        self.cursor = self._read_to = await self.store.run(addins.last_audit_id, self.store)
        # Read after the cursor: a change made meanwhile is followed again, to the same end.
        for room, jids in (await self.store.run(addins.every_manager, self.store)).items():
            self.rooms.name_managers(room, jids)
        self._muted |= await self.store.run(addins.every_mute, self.store)
        # What the subject pin needs to know before a person changes a subject: one read.
        for info in await self.store.run(addins.pinned, self.store, default=self.pin):
            self._wanted.setdefault(info.jid, self._tail(info))
            self._written.setdefault(info.jid, info.pin_tail)
        self._task = asyncio.create_task(self._follow(), name="announcer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def handed(self, changes: Sequence[Change]) -> None:
        """On the loop: changes this process has committed, as the operation that made them
        returned them, oldest first. Those that follow on from the last change taken in are
        queued as they are, with no read; the rest wait for the follower, woken to read
        what comes between. Said at the next `announce` (or `poke`)."""
        if not changes:
            return
        for change in changes:
            if change.entry.id > self._read_to:
                self._early[change.entry.id] = change
        self._follow_on()
        self.on_changes()  # answers kept from before them are out of date now
        if self._early:
            self._wake.set()

    def poke(self) -> None:
        """On the loop, e.g. after a command: say now what was handed over, and if some of it
        waits for a read, look now rather than at the next poll. (Mostly there is nothing to
        look for, and a look is a database query on a worker thread, competing with the
        next command.)"""
        self.announce()
        if self._early:
            self._wake.set()

    async def _follow(self) -> None:
        while True:
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives
            # just as the event is set, and stop() would then wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_S):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.catch_up()
            except CommandError as exc:  # the database is away; try again at the next poll
                log.warning("cannot read changes: %s", exc)
            except Exception:
                log.exception("announcing changes failed")

    async def catch_up(self) -> None:
        """Read and announce every change not announced yet."""
        while True:
            changes = await self.store.run(
                addins.changes_to_announce, self.store, self._read_to, limit=READ_BATCH
            )
            self.take_in(changes)
            self.announce()
            if len(changes) < READ_BATCH:
                return

    def take_in(self, changes: Sequence[Change]) -> None:
        """On the loop: changes read from the log, oldest first, all those committed after
        some id (audit ids are handed out in commit order). Those taken in already (handed
        over, or read by an earlier look) are passed over."""
        for change in changes:
            if change.entry.id > self._read_to:
                self._read.append(change)
                self._read_to = change.entry.id
        self._early = {key: early for key, early in self._early.items() if key > self._read_to}
        self._follow_on()

    def _follow_on(self) -> None:
        while (change := self._early.pop(self._read_to + 1, None)) is not None:
            self._read.append(change)
            self._read_to = change.entry.id

    def announce(self) -> None:
        """On the loop: say, in order, what the reads found."""
        if not self._read:
            return
        while self._read:
            change = self._read.popleft()
            self.cursor = change.entry.id
            try:
                self._announce(change)
            except Exception:  # one change that cannot be said must not stop the others
                log.exception("announcing change %d failed", change.entry.id)
        self.on_changes()

    def _announce(self, change: Change) -> None:
        entry = change.entry
        if entry.action == "leave" and entry.via == "room" and entry.room:
            if self.rooms.is_live(entry.room):  # an owner sent the bot away: goodbye first
                attached = any(info.addin is not None for info in change.rooms)
                self.transport.send_room(entry.room, goodbye_sentence(self.tr, addin=attached))
            self.on_membership(entry)
        elif entry.action in ("join", "leave"):
            self.on_membership(entry)
        elif entry.action in ("mute", "unmute"):
            muted = (entry.room or addins.ALL_ROOMS, entry.detail)
            if entry.action == "mute":
                self._muted.add(muted)
            else:
                self._muted.discard(muted)
        elif entry.action in ("manager-add", "manager-remove") and entry.room:
            named = self.rooms.named(entry.room)
            jid = frozenset({entry.detail})
            added = entry.action == "manager-add"
            self.rooms.name_managers(entry.room, named | jid if added else named - jid)
        elif entry.action in ("attach", "update-url"):
            # The rooms as they are now, read with the change: after an update, those with
            # that URL (found by the URL, not the name: the add-in may have been renamed
            # since; if the URL changed again meanwhile, none match and the later change
            # announces it).
            for info in change.rooms:
                if self.rooms.is_live(info.jid) and self.announces(info.jid, entry.id):
                    self._say_attached(info)
        elif (entry.action == "detach" and entry.room and self.rooms.is_live(entry.room)
              and self.announces(entry.room, entry.id)):
            unregistered = entry.detail == addins.FORCED_DETACH
            self.transport.send_room(
                entry.room, detached_sentence(entry.addin, self.tr, unregistered=unregistered)
            )
            METRICS.announcement("room")
        if entry.action in PINNED_CHANGES:
            for info in change.rooms:
                self._repin(info)

    # --- the subject pin ----------------------------------------------------------------------

    def _tail(self, info: RoomInfo) -> str | None:
        """The tail the subject of this room should carry now (None: none)."""
        pinned = info.pin if info.pin is not None else self.pin
        if not pinned or info.addin is None or info.url is None:
            return None
        return subject_tail(info.addin, info.url)

    def _repin(self, info: RoomInfo) -> None:
        """The room's add-in or pin changed: put the tail on its subject, change it, or take
        it off — only the tail the bot wrote, never what people wrote."""
        room = info.jid
        self._wanted[room] = self._tail(info)
        self._written.setdefault(room, info.pin_tail)
        self._put_back.discard(room)
        self._set(room, self._wanted[room])

    def _set(
        self, room: str, tail: str | None, written: str | None = None, *, asked: bool = False
    ) -> None:
        state = self.rooms.state(room)
        if state is None or not state.joined or state.subject is None:
            return  # said when the bot is next in the room and has learnt the subject
        role = self.rooms.own_role(room)
        unknown = room not in self.rooms.subject_config
        if (self.learn_config is not None and role == "participant" and unknown and not asked
                and (tail or self._written.get(room))):
            self._spawn(self._learn_then_set(self.learn_config, room, tail, written))
            return
        refusal = policy.subject_refusal(
            room, in_room=True, role=role, occupants_may=self.rooms.subject_open(room),
        )
        if refusal is not None:
            if tail is not None or self._written.get(room):
                log.info("subject of %s not changed: %s", room, refusal)
            return
        old = self._written.get(room)
        wanted = (
            subject.with_tail(written, tail) if written is not None and tail
            else subject.next_subject(state.subject, old, tail)
        )
        if wanted is not None:
            self.transport.set_subject(room, wanted)
            state.subject = wanted
        if old != tail:
            self._written[room] = tail
            self._remember_tail(room, tail)

    async def _learn_then_set(
        self, learn: Callable[[str], Awaitable[None]], room: str, tail: str | None,
        written: str | None,
    ) -> None:
        """May occupants change the subject of `room`? Asked first (once), then set."""
        await learn(room)
        self._set(room, tail, written, asked=True)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def _remember_tail(self, room: str, tail: str | None) -> None:
        async def write() -> None:
            try:
                await self.store.run(addins.set_pin_tail, self.store, room=room, tail=tail)
            except Exception:  # the next change writes it again
                log.exception("cannot remember the subject tail of %s", room)

        self._spawn(write())

    def subject_changed(self, room: str, text: str) -> None:
        """On the loop: someone else changed the subject (live, not history). What they
        wrote is kept; the tail is put back once, at its end. If they take it off again
        right after, it stays off until the add-in or the pin changes: no tug of war with
        a person, and none with another bot (a subject that still carries the tail,
        wherever, is left as it is)."""
        tail = self._wanted.get(room)
        if tail is None or subject.holds(text, tail):
            self._put_back.discard(room)
            return
        if room in self._put_back:
            log.info("the subject of %s was changed again without the add-in; left so", room)
            return
        self._put_back.add(room)
        written = subject.without_tail(text, self._written.get(room))
        self._set(room, tail, text if written is None else written)

    def _say_attached(self, info: RoomInfo) -> None:
        if info.addin is not None and info.url is not None:
            self.transport.send_room(
                info.jid, attached_sentence(info.addin, info.url, self.tr),
                Link(info.url, info.addin),
            )
            METRICS.announcement("room")
            if self.shared:  # those present were told, in the room
                task = asyncio.create_task(self.present(info.jid, tell=False))
                self._noting.add(task)
                task.add_done_callback(self._noting.discard)

    async def present(self, room: str, *, tell: bool) -> None:
        """Several processes: the occupants of `room` now (the bot's own sessions aside).
        `tell`: those not told the room's add-in within the cool-down are told now (a room
        taken over from another process: they joined while no process served it); else they
        are only noted as told (they saw it announced, or were there before any process
        served the room, and are not told, as on any first join)."""
        state = self.rooms.state(room)
        if state is None:
            return
        others = [
            occupant for occupant in list(state.occupants.values())
            if occupant.nick != state.nick and occupant.jid != self.own_jid
        ]
        for start in range(0, len(others), CLAIM_BATCH):
            await self._tell_joiners(room, others[start:start + CLAIM_BATCH], tell=tell)

    def _is_muted(self, room: str, person: str) -> bool:
        return (room, person) in self._muted or (addins.ALL_ROOMS, person) in self._muted

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

    async def _tell_joiners(self, room: str, joiners: list[Occupant], *, tell: bool = True) -> None:
        # Those who asked not to be sent it (`mute`) are neither told nor noted as told.
        joiners = [o for o in joiners if not self._is_muted(room, o.person)]
        if not joiners:
            return
        try:
            claimed = await self.store.run(
                addins.claim_announcements, self.store, room=room,
                people=[occupant.person for occupant in joiners], cooldown_s=self.cooldown_s,
            )
        except CommandError as exc:  # the database is away: these joiners go untold
            log.warning("cannot tell %d joiner(s) of %s: %s", len(joiners), room, exc)
            return
        except Exception:  # logged; the joiners queued behind them are still told
            log.exception("telling %d joiner(s) of %s failed", len(joiners), room)
            return
        info, due = claimed.result
        if not tell or info is None or info.addin is None or info.url is None:
            return
        sentence = welcome_sentence(info.addin, info.url, self.tr)
        link = Link(info.url, info.addin)
        untold = set(due)
        for occupant in joiners:
            if occupant.person in untold:  # once per person, whichever of their nicks
                untold.discard(occupant.person)
                self.transport.send_private(room, occupant.nick, sentence, link)
                METRICS.announcement("joiner")
