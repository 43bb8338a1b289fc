"""What the XMPP edge calls on the bot (all on the loop thread)."""

from __future__ import annotations

from typing import Protocol

from bot.invitations import Decline, Invitation
from bot.values import Message, Presence, Subject
from bot.xmpp.panel import Backend


class Bot(Backend, Protocol):
    """What the edge calls on the bot; all on the loop thread."""

    def own_nick(self, room: str) -> str | None: ...

    def on_message(self, message: Message) -> None: ...

    def on_presence(self, presence: Presence) -> None: ...

    def on_join_error(self, room: str, condition: str) -> None: ...

    def on_online(self) -> None: ...

    def on_offline(self) -> None: ...

    def on_sibling(self, resource: str, available: bool) -> None:
        """Another session of the bot's own account (another process) came or went."""

    def on_link(self, up: bool) -> None:
        """The connection is up (a session started or resumed) or down (even if resumable)."""

    def live_rooms(self) -> list[tuple[str, str]]:
        """(room, own nickname) of every room the bot is in, for self-pings."""

    def on_room_dropped(self, room: str, nick: str) -> None:
        """A self-ping says the room no longer has the bot as `nick`."""

    def on_invitation(self, invitation: Invitation, decline: Decline) -> None: ...

    async def room_exists(self, room: str) -> bool | None:
        """Ask the room whether it exists (through the edge's Transport method)."""

    def on_room_status(self, room: str, codes: frozenset[int]) -> None:
        """The room itself announced a change of its configuration (status codes)."""

    def on_subject(self, subject: Subject) -> None:
        """A room the bot is in sent its subject (on joining, or a change)."""

    def on_room_config(self, room: str, subject_open: bool | None) -> None:
        """What the room's disco#info says of its configuration (asked before each join):
        whether occupants may change the subject (None: it does not say)."""
