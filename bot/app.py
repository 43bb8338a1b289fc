"""The bot itself: routes inbound messages to commands, presence to the room tracker and the
announcer, and keeps the bot in the rooms it serves. No slixmpp here: the edge hands over
plain values and carries out the Transport calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from bot import addins, names, policy
from bot.announce import Announcer
from bot.commands.direct import DIRECT
from bot.commands.grammar import split_words, strip_direct_prefix, strip_room_prefix
from bot.commands.registry import Dispatcher
from bot.commands.room import ROOM
from bot.config import Settings
from bot.errors import CommandError
from bot.invitations import Decline, Invitation, Invitations
from bot.limits import RateLimit, Verdict
from bot.metrics import METRICS
from bot.rooms import (
    NOW_FULLY_ANONYMOUS,
    NOW_NON_ANONYMOUS,
    NOW_SEMI_ANONYMOUS,
    Arrival,
    Exit,
    Gone,
    Joined,
    Promoted,
    Rooms,
)
from bot.values import (
    Actor,
    AuditEntry,
    Change,
    Kind,
    Message,
    Place,
    Presence,
    Reply,
    Sender,
    Transport,
)
from store import Store

log = logging.getLogger(__name__)

REJOIN_FIRST_S = 2.0
REJOIN_MOST_S = 300.0
BOT = Actor("addinbot", "bot")
# Stop trying for good on these; a kick or a vanished stream is retried.
FINAL_EXITS = frozenset({Exit.BANNED, Exit.DESTROYED, Exit.REMOVED})
MAX_NICK_TRIES = 3
ANONYMITY_CHANGED = frozenset({NOW_NON_ANONYMOUS, NOW_SEMI_ANONYMOUS, NOW_FULLY_ANONYMOUS})
FINAL_JOIN_ERRORS = frozenset(
    {"forbidden", "registration-required", "not-authorized", "item-not-found"}
)


@dataclass(frozen=True)
class _Command:
    message: Message
    place: Place
    sender: Sender
    text: str
    person: str  # who, for limits and ordering: a real JID, an occupant id, or a nickname


class App:
    def __init__(self, settings: Settings, store: Store, transport: Transport) -> None:
        assert settings.xmpp is not None  # noqa: S101 - checked before the bot is built
        self.settings = settings
        self.store = store
        self.transport = transport
        self.nick = settings.xmpp.nick
        self.rooms = Rooms()
        self.dispatcher = Dispatcher(
            settings, store, self.rooms, {Place.DIRECT: DIRECT, Place.ROOM: ROOM},
            changed=lambda changes: self.announcer.handed(changes),  # said after the reply
        )
        self.announcer = Announcer(
            store, transport, self.rooms, cooldown_s=settings.announce.cooldown_s,
            on_membership=self._membership_changed,
            on_changes=self.dispatcher.answers.changed,
        )
        self.wanted: set[str] = set()  # rooms the bot should be in
        # The rooms joined together on connecting, not yet answered: logged as one line.
        self._first_joins: set[str] = set()
        self._first_joined = self._first_total = 0
        self._rejoin_delay: dict[str, float] = {}
        self._nick_tries: dict[str, int] = {}  # nickname conflicts met per room
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._online = False
        self._senders: dict[str, tuple[asyncio.Lock, int]] = {}  # lock, commands waiting
        limits = settings.limits
        self.sender_limit = RateLimit(limits.sender, limits.window_s)
        self.room_limit = RateLimit(limits.room, limits.window_s)
        self.invitations = Invitations(
            settings, store, self.rooms, transport, nick=lambda: self.nick,
            serving=lambda room: room in self.wanted, keep=self._keep, spawn=self._spawn,
            changed=self.changed,
        )

    async def start(self) -> None:
        await self.announcer.start()

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self.invitations.stop()
        leaving, self.wanted = sorted(self.wanted), set()
        for room in leaving:
            nick = self.rooms.nick_in(room)
            if nick is not None and self._online:
                with contextlib.suppress(Exception):  # one bad room must not keep us in others
                    self.transport.leave(room, nick)
        await self.announcer.stop()
        for task in list(self._tasks):
            task.cancel()

    # --- from the edge ---------------------------------------------------------------------

    def own_nick(self, room: str) -> str | None:
        return self.rooms.nick_in(room)

    def on_message(self, message: Message) -> None:
        """Decide at once (on the loop) whether this is a command and whether it is within
        the limits; the command itself runs as a task."""
        command = self._recognise(message)
        if command is None or not self._within_limits(command):
            return
        if self._answer_now(command):
            return
        self._spawn(self._in_order(command))

    def on_presence(self, presence: Presence) -> None:
        for change in self.rooms.update(presence):
            if isinstance(change, Arrival):
                self._spawn(self.announcer.arrival(change))
            elif isinstance(change, Joined):
                self._log_joined(change.room)
                self._rejoin_delay.pop(change.room, None)
                self.invitations.joined(change.room)
            elif isinstance(change, Gone):
                self.invitations.gone(change.room, change.why.value)
                self._gone(change.room, change.why.value, final=change.why in FINAL_EXITS)
            elif isinstance(change, Promoted):  # ask for the occupants again, JIDs and all
                self.transport.join(change.room, presence.nick)

    def on_join_error(self, room: str, condition: str) -> None:
        self.rooms.forget(room)
        self.invitations.join_failed(room, condition)
        if condition == "conflict":
            # Someone sits on our nickname there: take the next one rather than wait for it.
            tries = self._nick_tries.get(room, 0) + 1
            self._nick_tries[room] = tries
            if tries <= MAX_NICK_TRIES:
                self._join(room)
                return
        self._gone(room, f"join refused: {condition}", final=condition in FINAL_JOIN_ERRORS)

    def on_online(self) -> None:
        self._online = True
        self._spawn(self._join_all())

    def on_offline(self) -> None:
        self._online = False
        self.rooms.clear()  # the server forgot us; every room is joined anew on reconnect
        self.invitations.stop()  # rooms joined only to look at them are forgotten too

    def live_rooms(self) -> list[tuple[str, str]]:
        return [(state.jid, state.nick) for state in self.rooms.rooms.values() if state.joined]

    def on_room_dropped(self, room: str, nick: str) -> None:
        """A self-ping found the bot gone from `room` though no one told it: rejoin."""
        if not self.rooms.is_live(room) or self.rooms.nick_in(room) != nick:
            return  # left, or rejoined, since the ping went out
        self.rooms.forget(room)
        self.invitations.gone(room, "the room dropped the bot")
        self._gone(room, "dropped by the room without a word", final=False)

    def on_room_status(self, room: str, codes: frozenset[int]) -> None:
        """The room changed whom it shows real JIDs to: join again, so that the room sends
        its occupants afresh as it now shows them (nobody present is told anything)."""
        if codes & ANONYMITY_CHANGED and room in self.wanted and self.rooms.is_live(room):
            log.info("%s changed its anonymity (status %s); refreshing its occupants",
                     room, ", ".join(map(str, sorted(codes))))
            self._join(room)

    def on_invitation(self, invitation: Invitation, decline: Decline) -> None:
        self.invitations.receive(invitation, decline)

    def changed(self, changes: Sequence[Change] = ()) -> None:
        """On the loop: changes made outside chat (Control Panel, invitations): say them now."""
        self.announcer.handed(changes)
        self.announcer.poke()

    # --- commands --------------------------------------------------------------------------

    def _recognise(self, message: Message) -> _Command | None:
        if message.kind is Kind.DIRECT:
            assert message.jid is not None  # noqa: S101 - the edge sets it for direct messages
            text = strip_direct_prefix(message.body)
            return _Command(message, Place.DIRECT, Sender(message.jid), text, message.jid)
        room, nick = message.room, message.nick
        if room is None or nick is None or not self.rooms.is_live(room):
            return None  # not before our own join has completed
        occupant = self.rooms.occupant(room, nick)
        person = occupant.person if occupant else f"nick:{nick}"
        if message.kind is Kind.ROOM_PRIVATE:
            # A private message through a room proves only a nickname.
            text = strip_direct_prefix(message.body)
            return _Command(message, Place.ROOM, Sender(None, room, nick), text, person)
        said = strip_room_prefix(message.body, self.rooms.nick_in(room) or self.nick)
        if said is None:
            return None  # ordinary conversation
        # A room vouches for an occupant's real JID only where it shows it to the bot.
        sender = Sender(occupant.jid if occupant else None, room, nick)
        return _Command(message, Place.ROOM, sender, said, person)

    def _within_limits(self, command: _Command) -> bool:
        checks = [(self.sender_limit, self._order_key(command))]
        if command.sender.room is not None:
            checks.append((self.room_limit, command.sender.room))
        for limit, key in checks:
            verdict = limit.check(key)
            if verdict is Verdict.ALLOW:
                continue
            if verdict is Verdict.NOTICE:
                wait = max(1, math.ceil(limit.retry_after(key)))
                self._reply(command, Reply(
                    f"Too many commands: at most {limit.count} every {limit.window_s:g} s. "
                    f"Try again in {wait} s; until then the bot stays silent."
                ))
            return False
        return True

    def _answer_now(self, command: _Command) -> bool:
        """Answer from the kept answers (bot/commands/answers.py), without a task or a
        database thread — unless the sender has a command still running, which answers
        first."""
        if command.message.kind is Kind.ROOM_PRIVATE or self._order_key(command) in self._senders:
            return False
        reply = self.dispatcher.kept(command.place, command.sender, command.text)
        if reply is None:
            return False
        self._reply(command, reply)
        return True

    @staticmethod
    def _order_key(command: _Command) -> str:
        return f"{command.sender.room}|{command.person}"

    async def _in_order(self, command: _Command) -> None:
        # One sender's commands run in the order they were sent; different senders in parallel.
        key = self._order_key(command)
        lock, waiting = self._senders.get(key, (asyncio.Lock(), 0))
        self._senders[key] = (lock, waiting + 1)
        try:
            async with lock:
                reply = await self._run(command)
                if reply is not None:
                    self._reply(command, reply)
        finally:
            lock, waiting = self._senders[key]
            if waiting == 1:
                del self._senders[key]
            else:
                self._senders[key] = (lock, waiting - 1)
            self.announcer.poke()

    async def _run(self, command: _Command) -> Reply | None:
        if command.message.kind is Kind.ROOM_PRIVATE:
            refusal = self._direct_only(command.text)
            if refusal is not None:
                METRICS.refused(command.place.name, "direct_only")
                return Reply(refusal)
        return await self.dispatcher.run(command.place, command.sender, command.text)

    def _reply(self, command: _Command, reply: Reply) -> None:
        sender = command.sender
        if sender.room is None:
            assert sender.jid is not None  # noqa: S101 - direct messages come from a real JID
            self.transport.send_direct(sender.jid, reply.text)
        elif reply.public:
            self.transport.send_room(sender.room, reply.text, reply.link)
        else:
            assert sender.nick is not None  # noqa: S101 - room commands come from a nickname
            self.transport.send_private(sender.room, sender.nick, reply.text, reply.link)

    def _direct_only(self, text: str) -> str | None:
        try:
            words = split_words(text)
        except CommandError:
            return None  # the dispatcher gives the error
        name = words[0].lower() if words else ""
        return policy.direct_only_refusal(name, DIRECT.commands, ROOM.commands)

    # --- rooms -----------------------------------------------------------------------------

    async def _join_all(self) -> None:
        remembered = await self.store.run(addins.list_rooms, self.store, joined_only=True)
        served = set(self.settings.pools.names)
        self.wanted = set(self.settings.rooms.autojoin) | {
            info.jid for info in remembered if names.pool_of(info.jid) in served
        }
        self._first_joins, self._first_joined = set(self.wanted), 0
        self._first_total = len(self.wanted)
        for room in sorted(self.wanted):
            self._join(room)

    def _log_joined(self, room: str) -> None:
        """A line per room joined, but one for all the rooms joined together on connecting:
        at a thousand rooms, a line each costs the start-up a tenth of its time."""
        if room not in self._first_joins:
            log.info("joined %s", room)
            return
        log.debug("joined %s", room)
        self._first_joined += 1
        self._first_answered(room)

    def _first_answered(self, room: str) -> None:
        if room in self._first_joins:
            self._first_joins.discard(room)
            if not self._first_joins:
                log.info("joined %d of %d rooms", self._first_joined, self._first_total)

    def _join(self, room: str) -> None:
        self._timers.pop(room, None)
        if not self._online or room not in self.wanted:
            return
        tries = self._nick_tries.get(room, 0)
        nick = self.nick if not tries else f"{self.nick}{'_' * tries}"
        self.rooms.joining(room, nick)
        try:
            self.transport.join(room, nick)
        except Exception:  # e.g. an address stored before it was checked: skip just this room
            log.exception("cannot join %s", room)
            self.rooms.forget(room)
            self._gone(room, "cannot join: not a valid room address", final=True)

    def _keep(self, room: str, keep: bool) -> None:
        """An invitation was accepted in a room the bot joined to look at: it stays."""
        if keep:
            self.wanted.add(room)
        else:
            self.wanted.discard(room)

    def _membership_changed(self, change: AuditEntry) -> None:
        room = change.room
        if room is None or names.pool_of(room) not in self.settings.pools.names:
            return
        if change.action == "join" and room not in self.wanted:
            self.wanted.add(room)
            self._join(room)
        elif change.action == "leave" and room in self.wanted:
            self.wanted.discard(room)
            nick = self.rooms.nick_in(room)
            self.rooms.forget(room)
            if nick is not None and self._online:
                self.transport.leave(room, nick)

    def _gone(self, room: str, why: str, *, final: bool) -> None:
        self._first_answered(room)
        if room not in self.wanted:
            return  # we left it on purpose
        if final:
            log.warning("stopped trying %s: %s", room, why)
            self.wanted.discard(room)
            self._spawn(self._record_stop(room, why))
            return
        delay = self._rejoin_delay.get(room, REJOIN_FIRST_S)
        self._rejoin_delay[room] = min(delay * 2, REJOIN_MOST_S)
        log.warning("out of %s (%s); rejoining in %.0f s", room, why, delay)
        loop = asyncio.get_running_loop()
        self._timers[room] = loop.call_later(delay, self._join, room)

    async def _record_stop(self, room: str, why: str) -> None:
        done = await self.store.run(
            addins.set_joined, self.store, BOT, room=room, joined=False, reason=why[:255]
        )
        self.changed(done.changes)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())
