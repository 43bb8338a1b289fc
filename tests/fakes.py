"""The one in-memory fake of the XMPP edge, for the tests that run the bot without a server.

`FakeEdge` is the bot's Transport (bot.values.Transport): it records what the bot would
send, join and leave, and can refuse to join or leave an address the network layer would
refuse. Waiting for a send waits for that send (by kind and content), never for "the next
one", and never by polling a clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.values import Link

WAIT_S = 5.0


@dataclass(frozen=True)
class Sent:
    kind: str  # "direct", "private" (through a room), "room" or "subject"
    to: str  # a bare JID, room/nick, or the room
    text: str
    link: Link | None = None


class FakeEdge:
    def __init__(self, *, refuse: Iterable[str] = ()) -> None:
        self.refuse = set(refuse)
        self.missing: set[str] = set()  # rooms that do not exist: room_exists says False
        self.asked: list[str] = []  # the rooms asked whether they exist, in order
        self.sent: list[Sent] = []
        self.joined: list[str] = []
        self.left: list[str] = []
        self.destroyed: list[str] = []
        self.relayed: list[tuple[str, str, str, str | None]] = []  # process, jid, text, lang
        self._news: asyncio.Event | None = None

    # --- the Transport ---------------------------------------------------------------------

    def send_direct(self, to: str, text: str) -> None:
        self._record(Sent("direct", to, text))

    def send_private(self, room: str, nick: str, text: str, link: Link | None = None) -> None:
        self._record(Sent("private", f"{room}/{nick}", text, link))

    def send_room(self, room: str, text: str, link: Link | None = None) -> None:
        self._record(Sent("room", room, text, link))

    def set_subject(self, room: str, subject: str) -> None:
        self._record(Sent("subject", room, subject))

    def join(self, room: str, nick: str) -> None:
        self._check(room)
        self.joined.append(room)
        self._told()

    def leave(self, room: str, nick: str) -> None:
        self._check(room)
        self.left.append(room)

    def relay(self, process: str, jid: str, text: str, lang: str | None) -> None:
        self.relayed.append((process, jid, text, lang))
        self._told()

    async def ask_managed(self, process: str, jid: str) -> dict[str, bool]:
        return {}  # (no other process)

    async def room_exists(self, room: str) -> bool | None:
        self.asked.append(room)
        self._told()
        return room not in self.missing

    async def destroy(self, room: str) -> bool:
        self.destroyed.append(room)
        self.missing.add(room)
        self._told()
        return True

    # --- reading what was sent -------------------------------------------------------------

    def in_rooms(self) -> list[tuple[str, str, Link | None]]:
        """What was said in rooms: (room, text, link), in order."""
        return [(s.to, s.text, s.link) for s in self.sent if s.kind == "room"]

    async def take(
        self, kind: str, matching: Callable[[Sent], bool] = lambda _sent: True,
        timeout: float = WAIT_S,
    ) -> Sent:
        """The first send of `kind` that `matching` accepts, once it has been sent; it is
        taken out, the others stay for later readers."""
        async with asyncio.timeout(timeout):
            while True:
                for index, sent in enumerate(self.sent):
                    if sent.kind == kind and matching(sent):
                        return self.sent.pop(index)
                await self._news_event().wait()
                self._news_event().clear()

    async def until(self, done: Callable[[], bool], timeout: float = WAIT_S) -> None:
        """Wait until `done()` holds, looking again after each thing the bot does here
        (a send, a join, a question, a destruction)."""
        async with asyncio.timeout(timeout):
            while not done():
                await self._news_event().wait()
                self._news_event().clear()

    # --- inside ----------------------------------------------------------------------------

    def _record(self, sent: Sent) -> None:
        self.sent.append(sent)
        self._told()

    def _told(self) -> None:
        if self._news is not None:
            self._news.set()

    def _news_event(self) -> asyncio.Event:
        if self._news is None:
            self._news = asyncio.Event()
        return self._news

    def _check(self, room: str) -> None:
        if room in self.refuse:
            raise ValueError(f"invalid JID {room}")
