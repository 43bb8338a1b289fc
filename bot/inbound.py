"""What the XMPP edge hands to the bot, and what the bot asks the edge to do: plain values."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from bot.commands.registry import Link


class Kind(enum.Enum):
    DIRECT = "direct"  # a chat message from a real JID, as the server delivered it
    ROOM = "room"  # a groupchat message in a room
    ROOM_PRIVATE = "room-private"  # a private message sent through a room: only a nickname


@dataclass(frozen=True)
class Message:
    kind: Kind
    body: str
    jid: str | None = None  # DIRECT only: the sender's real bare JID
    room: str | None = None
    nick: str | None = None


class Transport(Protocol):
    """What the bot asks of the network. Implemented by bot.xmpp; called on the loop thread."""

    def send_direct(self, to: str, text: str) -> None: ...

    def send_private(self, room: str, nick: str, text: str, link: Link | None = None) -> None: ...

    def send_room(self, room: str, text: str, link: Link | None = None) -> None: ...

    def join(self, room: str, nick: str) -> None: ...

    def leave(self, room: str, nick: str) -> None: ...
