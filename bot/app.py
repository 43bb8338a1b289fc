"""The bot itself: routes inbound messages to commands, presence to the room tracker and the
announcer, and keeps the bot in the rooms it serves. No slixmpp here: the edge hands over
plain values and carries out the Transport calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from sqlalchemy import Engine

from bot import addins
from bot.addins import Actor, AuditEntry
from bot.announce import Announcer
from bot.commands.direct import DIRECT
from bot.commands.grammar import split_words, strip_direct_prefix, strip_room_prefix
from bot.commands.registry import Dispatcher, Place, Reply, Sender
from bot.commands.room import ROOM
from bot.config import Settings
from bot.errors import CommandError
from bot.inbound import Kind, Message, Transport
from bot.rooms import Arrival, Exit, Gone, Joined, Presence, Rooms

log = logging.getLogger(__name__)

REJOIN_FIRST_S = 2.0
REJOIN_MOST_S = 300.0
BOT = Actor("addinbot", "bot")
# Stop trying for good on these; a kick or a vanished stream is retried.
FINAL_EXITS = {Exit.BANNED, Exit.DESTROYED, Exit.REMOVED}
FINAL_JOIN_ERRORS = {"forbidden", "registration-required", "not-authorized", "item-not-found"}


class App:
    def __init__(self, settings: Settings, engine: Engine, transport: Transport) -> None:
        assert settings.xmpp is not None  # noqa: S101 - checked before the bot is built
        self.settings = settings
        self.engine = engine
        self.transport = transport
        self.nick = settings.xmpp.nick
        self.rooms = Rooms()
        self.dispatcher = Dispatcher(
            settings, engine, self.rooms, {Place.DIRECT: DIRECT, Place.ROOM: ROOM}
        )
        self.announcer = Announcer(
            engine, transport, self.rooms, cooldown_s=settings.announce.cooldown_s,
            on_membership=self._membership_changed,
        )
        self.wanted: set[str] = set()  # rooms the bot should be in
        self._rejoin_delay: dict[str, float] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._online = False
        self._senders: dict[str, tuple[asyncio.Lock, int]] = {}  # lock, commands waiting

    async def start(self) -> None:
        await self.announcer.start()

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        leaving, self.wanted = sorted(self.wanted), set()
        for room in leaving:
            nick = self.rooms.nick_in(room)
            if nick is not None and self._online:
                self.transport.leave(room, nick)
        await self.announcer.stop()
        for task in list(self._tasks):
            task.cancel()

    # --- from the edge ---------------------------------------------------------------------

    def own_nick(self, room: str) -> str | None:
        return self.rooms.nick_in(room)

    def on_message(self, message: Message) -> None:
        self._spawn(self._command(message))

    def on_presence(self, presence: Presence) -> None:
        for change in self.rooms.update(presence):
            if isinstance(change, Arrival):
                self._spawn(self.announcer.arrival(change))
            elif isinstance(change, Joined):
                log.info("joined %s", change.room)
                self._rejoin_delay.pop(change.room, None)
            elif isinstance(change, Gone):
                self._gone(change.room, change.why.value, final=change.why in FINAL_EXITS)

    def on_join_error(self, room: str, condition: str) -> None:
        self.rooms.forget(room)
        self._gone(room, f"join refused: {condition}", final=condition in FINAL_JOIN_ERRORS)

    def on_online(self) -> None:
        self._online = True
        self._spawn(self._join_all())

    def on_offline(self) -> None:
        self._online = False
        self.rooms.clear()  # the server forgot us; every room is joined anew on reconnect

    # --- commands --------------------------------------------------------------------------

    async def _command(self, message: Message) -> None:
        # One sender's commands run in the order they were sent; different senders in parallel.
        key = message.jid or f"{message.room}/{message.nick}"
        lock, waiting = self._senders.get(key, (asyncio.Lock(), 0))
        self._senders[key] = (lock, waiting + 1)
        try:
            async with lock:
                await self._answer(message)
        finally:
            lock, waiting = self._senders[key]
            if waiting == 1:
                del self._senders[key]
            else:
                self._senders[key] = (lock, waiting - 1)

    async def _answer(self, message: Message) -> None:
        if message.kind is Kind.DIRECT:
            assert message.jid is not None  # noqa: S101 - the edge sets it for direct messages
            reply = await self.dispatcher.run(
                Place.DIRECT, Sender(message.jid), strip_direct_prefix(message.body)
            )
            if reply is not None:
                self.transport.send_direct(message.jid, reply.text)
        elif message.room and message.nick and self.rooms.is_live(message.room):
            reply = await self._room_command(message, message.room, message.nick)
            if reply is not None:
                self._answer_in_room(message.room, message.nick, reply)
        self.announcer.poke()

    async def _room_command(self, message: Message, room: str, nick: str) -> Reply | None:
        if message.kind is Kind.ROOM:
            text = strip_room_prefix(message.body, self.rooms.nick_in(room) or self.nick)
            if text is None:
                return None  # ordinary conversation
            occupant = self.rooms.occupant(room, nick)
            # A room vouches for an occupant's real JID only where it shows it to the bot.
            sender = Sender(occupant.jid if occupant else None, room, nick)
        else:
            text = strip_direct_prefix(message.body)
            sender = Sender(None, room, nick)  # a private message proves only a nickname
            refusal = self._direct_only(text)
            if refusal is not None:
                return Reply(refusal)
        return await self.dispatcher.run(Place.ROOM, sender, text)

    def _direct_only(self, text: str) -> str | None:
        try:
            words = split_words(text)
        except CommandError:
            return None  # the dispatcher gives the error
        name = words[0].lower() if words else ""
        if name in DIRECT.commands and name not in ROOM.commands:
            return (
                f"Send “{name}” to the bot directly, not through a room: a private message "
                f"from a room proves only a nickname, not who you are."
            )
        return None

    def _answer_in_room(self, room: str, nick: str, reply: Reply) -> None:
        if reply.public:
            self.transport.send_room(room, reply.text, reply.link)
        else:
            self.transport.send_private(room, nick, reply.text, reply.link)

    # --- rooms -----------------------------------------------------------------------------

    async def _join_all(self) -> None:
        remembered = await asyncio.to_thread(addins.list_rooms, self.engine, joined_only=True)
        served = set(self.settings.pools.names)
        self.wanted = set(self.settings.rooms.autojoin) | {
            info.jid for info in remembered if addins.pool_of(info.jid) in served
        }
        for room in sorted(self.wanted):
            self._join(room)

    def _join(self, room: str) -> None:
        self._timers.pop(room, None)
        if not self._online or room not in self.wanted:
            return
        self.rooms.joining(room, self.nick)
        self.transport.join(room, self.nick)

    def _membership_changed(self, change: AuditEntry) -> None:
        room = change.room
        if room is None or addins.pool_of(room) not in self.settings.pools.names:
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
        await asyncio.to_thread(
            addins.set_joined, self.engine, BOT, room=room, joined=False, reason=why[:255]
        )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())
