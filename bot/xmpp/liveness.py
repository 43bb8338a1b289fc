"""Staying connected: XEP-0199 pings to the server, XEP-0410 self-pings to each room.

A TCP connection can die without either end being told, and a room can forget an occupant
without telling it (a MUC service restarted without its state, a lost server-to-server
link). When nothing has come from the server for `server_every_s`, the bot pings it; no
answer (nor anything else) within `server_timeout_s` and the connection is dropped (not
closed: with stream management the session is then resumed on reconnect). Several
processes (`cluster.enabled`) use the lease renewal period for both, so that a process cut
off from the server gives its rooms up within seconds (bot.runner).

Every room the bot has not heard from for `room_every_s` gets a self-ping to
the bot's own occupant JID; when the room answers that the bot is not in it, the bot is told
(`Bot.on_room_dropped`) and rejoins.

slixmpp's own keepalive is not used: on a timeout it closes the stream cleanly, which ends a
resumable session instead of resuming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from typing import TYPE_CHECKING, Any

from slixmpp.exceptions import IqError, IqTimeout

if TYPE_CHECKING:
    from bot.xmpp.client import XmppEdge

log = logging.getLogger(__name__)

SERVER_EVERY_S = 60.0
ROOM_EVERY_S = 300.0
TIMEOUT_S = 30.0
AT_ONCE = 20  # self-pings in flight at a time


class SelfPing(enum.Enum):
    """What a self-ping answer says about the bot's place in a room (XEP-0410 §3)."""

    JOINED = "joined"
    GONE = "gone"
    UNKNOWN = "unknown"  # the room or its server could not be reached: ask again later


# Errors that still prove the bot is an occupant: the room passed the ping on to the bot's
# own client (which does not answer pings), or the nickname just changed.
_STILL_JOINED = frozenset({"service-unavailable", "feature-not-implemented", "item-not-found"})
_UNREACHABLE = frozenset({"remote-server-not-found", "remote-server-timeout"})


def self_ping_verdict(condition: str | None, *, timed_out: bool = False) -> SelfPing:
    """The verdict for a self-ping answered with `condition` (None: a result)."""
    if timed_out or condition in _UNREACHABLE:
        return SelfPing.UNKNOWN
    if condition is None or condition in _STILL_JOINED:
        return SelfPing.JOINED
    return SelfPing.GONE  # not-acceptable above all: "you are not in this room"


class Liveness:
    """The ping loop of one edge; runs while a session is up."""

    def __init__(self, edge: XmppEdge) -> None:
        self.edge = edge
        self.server_every_s = SERVER_EVERY_S
        self.server_timeout_s = TIMEOUT_S
        self.room_every_s = ROOM_EVERY_S
        self.timeout_s = TIMEOUT_S  # for self-pings
        self._heard: dict[str, float] = {}  # room -> loop time of its last stanza to us
        self._stream_heard = 0.0  # loop time of the last stanza from the server, any
        self._task: asyncio.Task[None] | None = None
        # bot.xmpp.muc calls heard() for every room message and occupant's presence; the
        # edge has heard_stream() as an in-filter of every stanza.

    def heard_stream(self, stanza: Any) -> Any:
        """In-filter: whatever the server sends proves the connection alive."""
        self._stream_heard = asyncio.get_running_loop().time()
        return stanza

    def start(self) -> None:
        self.stop()
        self._heard.clear()
        self._stream_heard = asyncio.get_running_loop().time()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="liveness")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def heard(self, room: str) -> None:
        """A stanza came from ``room`` (a message, or an occupant's presence)."""
        self._heard[room] = asyncio.get_running_loop().time()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_server = loop.time() + self.server_every_s
        while True:
            tick = min(self.server_every_s, self.room_every_s) / 4
            await asyncio.sleep(tick)
            now = loop.time()
            try:
                if now >= next_server and now - self._stream_heard >= self.server_every_s:
                    next_server = now + self.server_every_s
                    if not await self.ping_server():
                        return  # the connection is being dropped; a new session starts us
                await self.ping_quiet_rooms(now)
            except Exception:
                log.exception("keepalive failed")

    async def ping_server(self) -> bool:
        """True if the server answered (even with an error), or sent anything else while
        the ping waited (a busy server answers late); else drop the connection."""
        asked = asyncio.get_running_loop().time()
        try:
            await self.edge.ping(self.edge.boundjid.domain, self.server_timeout_s)
        except IqError:
            return True  # an answer all the same: the connection lives
        except IqTimeout:
            if self._stream_heard > asked:
                return True
            log.warning("the server did not answer a ping in %.0f s: reconnecting",
                        self.server_timeout_s)
            self.edge.drop_connection()
            return False
        return True

    async def ping_quiet_rooms(self, now: float) -> None:
        bot = self.edge.bot
        if bot is None:
            return
        live = bot.live_rooms()
        self._heard = {room: self._heard[room] for room, _ in live if room in self._heard}
        # A room not heard from since the loop started is due at once. (Not "heard at
        # now - room_every_s": in floating point that can come out a hair short, forever.)
        quiet = [
            (room, nick)
            for room, nick in live
            if room not in self._heard or now - self._heard[room] >= self.room_every_s
        ]
        for room, _nick in quiet:
            self._heard[room] = now  # one ping per period, answered or not
        gate = asyncio.Semaphore(AT_ONCE)

        async def ping(room: str, nick: str) -> SelfPing:
            async with gate:
                return await self.self_ping(room, nick)

        verdicts = await asyncio.gather(*(ping(room, nick) for room, nick in quiet))
        for (room, nick), verdict in zip(quiet, verdicts, strict=True):
            if verdict is SelfPing.GONE and self.edge.bot is not None:
                log.warning("%s answered a self-ping: the bot is no longer in it", room)
                self.edge.bot.on_room_dropped(room, nick)

    async def self_ping(self, room: str, nick: str) -> SelfPing:
        try:
            await self.edge.ping(f"{room}/{nick}", self.timeout_s)
        except IqTimeout:
            return self_ping_verdict(None, timed_out=True)
        except IqError as exc:
            return self_ping_verdict(exc.condition or "undefined-condition")
        return self_ping_verdict(None)
