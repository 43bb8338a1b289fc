"""Which rooms the bot should be in, and getting it (back) into them.

The rooms it serves are the remembered ones (joined by an admin or an accepted invitation)
in a served pool, and `rooms.autojoin`. They are joined when the stream comes up, joined
again after a kick or a silent drop (waiting longer each time, up to REJOIN_MOST_S), under
another nickname when someone sits on its own, and given up for good — and remembered as
stopped — when the room bans it, is destroyed, or refuses it for good. Plain values in,
Transport calls out; it lives in the app (bot.app.App), on the event loop.

With several processes on one database (`cluster.enabled`), the rooms this process serves
are the ones it holds leases on (bot.cluster), handed over with `serve`; a `join` made
anywhere is left to the leases, which give the room to one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from bot import addins, names
from bot.config import Settings
from bot.rooms import Rooms
from bot.values import Actor, AuditEntry, Change, Transport
from store import Store

log = logging.getLogger(__name__)

REJOIN_FIRST_S = 2.0
REJOIN_MOST_S = 300.0
MAX_NICK_TRIES = 3
FOUND_FRESH_S = 10.0  # a room found to exist this recently is joined without asking again
BOT = Actor("addinbot", "bot")


class Membership:
    def __init__(
        self, settings: Settings, store: Store, rooms: Rooms, transport: Transport, *,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        changed: Callable[[Sequence[Change]], None],
        leased: bool = False, poke_leases: Callable[[], None] = lambda: None,
    ) -> None:
        assert settings.xmpp is not None  # noqa: S101 - checked before the bot is built
        self.settings = settings
        self.store = store
        self.rooms = rooms
        self.transport = transport
        self.spawn = spawn
        self.changed = changed  # on the loop: changes made here (a room given up)
        self.nick = settings.xmpp.nick
        self.online = False
        self.wanted: set[str] = set()  # rooms the bot should be in
        # The rooms joined together on connecting, not yet answered: logged as one line.
        self._first_joins: set[str] = set()
        self._first_joined = self._first_total = 0
        self._rejoin_delay: dict[str, float] = {}
        self._nick_tries: dict[str, int] = {}  # nickname conflicts met per room
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._asking: set[str] = set()  # rooms asked whether they exist, not yet answered
        self.absent: set[str] = set()  # rooms found not to exist (tried again later)
        self._found: dict[str, float] = {}  # rooms just found to exist: when (loop time)
        self.leased = leased  # the rooms served are those leased (several processes)
        self.poke_leases = poke_leases  # look at the leases now: a room was joined somewhere
        # Leased rooms some process served before: those present on joining who were not
        # told the add-in (they came while nobody served the room) are told on joining.
        self.taken_over: set[str] = set()
        # Left (`leave`) or given up for good here, while a beat that began before may still
        # hand them over: not joined again until a beat no longer does.
        self._given_up: set[str] = set()
        self._since: dict[str, int] = {}  # leased room -> the last change before it was taken

    async def join_all(self) -> None:
        """The stream is up: join every room the bot serves."""
        if self.leased:
            self.poke_leases()  # the leases say which (bot.cluster)
            return
        remembered = await self.store.run(addins.list_rooms, self.store, joined_only=True)
        served = set(self.settings.pools.names)
        # Added to, not replaced: a `join` made while the rooms were read (its own join
        # already under way) stays wanted, and is not joined a second time below.
        self.wanted |= set(self.settings.rooms.autojoin) | {
            info.jid for info in remembered if names.pool_of(info.jid) in served
        }
        first = {room for room in self.wanted if self.rooms.state(room) is None}
        self._first_joins, self._first_joined = set(first), 0
        self._first_total = len(first)
        for room in sorted(first):  # not those joining or joined already
            self.join(room)

    def leave_all(self) -> None:
        """The bot stops: leave every room (and forget none of them)."""
        for timer in self._timers.values():
            timer.cancel()
        leaving, self.wanted = sorted(self.wanted), set()
        for room in leaving:
            nick = self.rooms.nick_in(room)
            if nick is not None and self.online:
                with contextlib.suppress(Exception):  # one bad room must not keep us in others
                    self.transport.leave(room, nick)

    def serve(self, rooms: frozenset[str], fresh: frozenset[str], since: int = 0) -> None:
        """Several processes: serve exactly the leased `rooms` (`fresh`: served by no process
        before; `since`: the last change committed before those new here were taken). Rooms
        no longer leased are left at once; new ones joined."""
        if not self.leased:
            return
        self._given_up &= rooms
        rooms -= self._given_up
        for room in sorted(self.wanted - rooms):
            self._stop_serving(room)
        for room in sorted(rooms - self.wanted):
            self.wanted.add(room)
            self._since[room] = since
            if room not in fresh:
                self.taken_over.add(room)
            self.join(room)

    def announces(self, room: str, change: int) -> bool:
        """Whether change `change` (an audit id) is this process's to announce in `room`:
        always for a single process; with leases, only changes made after the room was
        taken here (earlier ones were its earlier holder's to say)."""
        return not self.leased or change > self._since.get(room, change)

    def _stop_serving(self, room: str) -> None:
        self._since.pop(room, None)
        self.wanted.discard(room)
        self.taken_over.discard(room)
        timer = self._timers.pop(room, None)
        if timer is not None:
            timer.cancel()
        nick = self.rooms.nick_in(room)
        self.rooms.forget(room)
        log.info("left %s (no longer leased to this process)", room)
        if nick is not None and self.online:
            with contextlib.suppress(Exception):  # one bad room must not keep us in others
                self.transport.leave(room, nick)

    def join(self, room: str) -> None:
        """Join `room`. A join to a room that does not exist creates it, with the bot its
        owner: the room then says so (status 201), and the bot destroys it at once
        (`created`). A room found missing is asked first (disco#info) the next times, so
        that it is not created again each time; any other is joined without asking — at
        start-up, a question per room would double the server's work (and the time)."""
        self._timers.pop(room, None)
        if not self.online or room not in self.wanted or room in self._asking:
            return
        if room in self.absent and not self._found_fresh(room):
            self._asking.add(room)
            self.spawn(self._join_if_there(room))
            return
        self._send_join(room)

    def found(self, room: str) -> None:
        """`room` answered a moment ago that it exists (an admin's `join`, an invitation):
        the join that follows need not ask again."""
        now = asyncio.get_running_loop().time()
        if len(self._found) >= 1000:
            self._found = {r: t for r, t in self._found.items() if now - t < FOUND_FRESH_S}
        self._found[room] = now

    def _found_fresh(self, room: str) -> bool:
        found = self._found.pop(room, None)
        return found is not None and asyncio.get_running_loop().time() - found < FOUND_FRESH_S

    async def _join_if_there(self, room: str) -> None:
        try:
            exists = await self.transport.room_exists(room)
        except ValueError:  # an address the edge would send to another room: never joined
            self.gone(room, "cannot join: not a valid room address", final=True)
            return
        finally:
            self._asking.discard(room)
        if not self.online or room not in self.wanted:
            return
        if exists is not True:
            why = "the room does not exist" if exists is False else "no answer to disco#info"
            self.gone(room, why, final=False)
            return
        self._send_join(room)

    def _send_join(self, room: str) -> None:
        self.absent.discard(room)
        tries = self._nick_tries.get(room, 0)
        nick = self.nick if not tries else f"{self.nick}{'_' * tries}"
        self.rooms.joining(room, nick)
        try:
            self.transport.join(room, nick)
        except Exception:  # e.g. an address stored before it was checked: skip just this room
            log.exception("cannot join %s", room)
            self.rooms.forget(room)
            self.gone(room, "cannot join: not a valid room address", final=True)

    def created(self, room: str) -> None:
        """The bot's join created `room` (it did not exist): destroy it, and try again
        later, asking first."""
        self._first_answered(room)
        self.absent.add(room)
        self.spawn(self._destroy(room))

    async def _destroy(self, room: str) -> None:
        if self.online:
            await self.transport.destroy(room)
        self.gone(room, "the room does not exist (the bot's join created it: destroyed)",
                  final=False)

    def joined(self, room: str) -> bool:
        """The room let the bot in. A line per room joined, but one for all the rooms joined
        together on connecting: at a thousand rooms, a line each costs the start-up a tenth
        of its time. True: a room taken over from another process (see taken_over)."""
        taken_over = room in self.taken_over
        self.taken_over.discard(room)
        self._rejoin_delay.pop(room, None)
        self._nick_tries.pop(room, None)  # the next join starts from the bot's own nickname
        if room not in self._first_joins:
            log.info("joined %s", room)
            return taken_over
        log.debug("joined %s", room)
        self._first_joined += 1
        self._first_answered(room)
        return taken_over

    def join_refused(self, room: str, condition: str, *, final: bool) -> None:
        if condition == "conflict":
            # Someone sits on our nickname there: take the next one rather than wait for it.
            tries = self._nick_tries.get(room, 0) + 1
            self._nick_tries[room] = tries
            if tries <= MAX_NICK_TRIES:
                self.join(room)
                return
        self.gone(room, f"join refused: {condition}", final=final)

    def keep(self, room: str, keep: bool) -> None:
        """An invitation was accepted in a room the bot joined to look at: it stays."""
        if keep:
            self.wanted.add(room)
        else:
            self.wanted.discard(room)

    def follow(self, change: AuditEntry) -> None:
        """A `join` or `leave` made anywhere (chat, a form, the command line, another
        process): be in the room, or out of it."""
        room = change.room
        if room is None or names.pool_of(room) not in self.settings.pools.names:
            return
        if change.action == "join" and self.leased:
            self._given_up.discard(room)
            self.poke_leases()  # one process will have it
        elif change.action == "join" and room not in self.wanted:
            self.wanted.add(room)
            self.join(room)
        elif change.action == "leave" and room in self.wanted:
            if self.leased:
                self._given_up.add(room)
            self.wanted.discard(room)
            nick = self.rooms.nick_in(room)
            self.rooms.forget(room)
            if nick is not None and self.online:
                self.transport.leave(room, nick)

    def gone(self, room: str, why: str, *, final: bool) -> None:
        """The bot is out of `room`: join again in a while, or (final) give it up."""
        self._first_answered(room)
        if room not in self.wanted:
            return  # we left it on purpose
        if final:
            log.warning("stopped trying %s: %s", room, why)
            if self.leased:
                self._given_up.add(room)
            self.wanted.discard(room)
            self.spawn(self._record_stop(room, why))
            return
        delay = self._rejoin_delay.get(room, REJOIN_FIRST_S)
        self._rejoin_delay[room] = min(delay * 2, REJOIN_MOST_S)
        log.warning("out of %s (%s); rejoining in %.0f s", room, why, delay)
        loop = asyncio.get_running_loop()
        self._timers[room] = loop.call_later(delay, self.join, room)

    def _first_answered(self, room: str) -> None:
        if room in self._first_joins:
            self._first_joins.discard(room)
            if not self._first_joins:
                log.info("joined %d of %d rooms", self._first_joined, self._first_total)

    async def _record_stop(self, room: str, why: str) -> None:
        done = await self.store.run(
            addins.set_joined, self.store, BOT, room=room, joined=False, reason=why[:255]
        )
        self.changed(done.changes)
