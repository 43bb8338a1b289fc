"""The plain values every layer shares: who asks, what they said, what the bot answers,
and what the store holds and changed. This module imports nothing of the bot; everything
else may import it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Literal, Protocol, TypeVar

_T = TypeVar("_T", covariant=True)  # a Done[Reply] is a Done[Reply | None]
_U = TypeVar("_U")

# --- who asks, and what they get back ---------------------------------------------------


class Role(enum.IntEnum):
    ANYONE = 0
    MANAGER = 1  # of the room the command is about
    OWNER = 2  # of the room the command is about (its `owner` affiliation)
    ADMIN = 3


class Place(enum.Enum):
    DIRECT = "direct message"
    ROOM = "room"


@dataclass(frozen=True)
class Sender:
    """Who sent a command, as far as the server vouches for it.

    `jid` is a real bare JID: the sender of a direct message, or an occupant's JID as the
    room itself reports it. It is None when nobody vouches for one (a nickname proves
    nothing)."""

    jid: str | None
    room: str | None = None
    nick: str | None = None
    # Who this is, as firmly as the room lets us say (bot.rooms.Occupant.person): `jid:…`,
    # `id:…` (XEP-0421 occupant id) or `nick:…`; a direct message's is `jid:…`.
    person: str | None = None


@dataclass(frozen=True)
class Link:
    url: str
    name: str


@dataclass(frozen=True)
class Reply:
    """An answer. In a room, `public` replies are said in the room; the rest go privately."""

    text: str
    public: bool = False
    link: Link | None = None


# --- what the XMPP edge hands over, and what the bot asks of it --------------------------


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
    lang: str | None = None  # the stanza's xml:lang, as the sender wrote it (if at all)
    # DIRECT only: handed over by another process of the bot (several processes), which
    # received it and does not serve the room it concerns; never handed on again.
    relayed: bool = False


class Transport(Protocol):
    """What the bot asks of the network. Implemented by bot.xmpp; called on the loop thread."""

    def send_direct(self, to: str, text: str) -> None: ...

    def send_private(self, room: str, nick: str, text: str, link: Link | None = None) -> None: ...

    def send_room(self, room: str, text: str, link: Link | None = None) -> None: ...

    def set_subject(self, room: str, subject: str) -> None: ...

    def join(self, room: str, nick: str) -> None: ...

    def leave(self, room: str, nick: str) -> None: ...

    def relay(self, process: str, jid: str, text: str, lang: str | None) -> None:
        """Hand a direct message (from `jid`, the server vouched) to another process of the
        bot, `process` (its id), which serves the room it concerns and answers it."""
        ...

    async def ask_managed(self, process: str, jid: str) -> dict[str, bool]:
        """Ask another process of the bot, `process`, which rooms it serves that `jid`
        manages (room → seen owning it); none when it does not answer in time."""
        ...

    async def room_exists(self, room: str) -> bool | None:
        """Whether the room exists (asked of the room itself, disco#info): True, False, or
        None when there was no clear answer."""
        ...

    async def destroy(self, room: str) -> bool:
        """Destroy a room the bot's own join created (joining a missing room creates it):
        True once it is gone."""
        ...


@dataclass(frozen=True)
class Presence:
    """One occupant presence as the room sent it."""

    room: str
    nick: str
    available: bool
    affiliation: str = "none"
    role: str = "none"
    jid: str | None = None  # the occupant's real bare JID, when the room shows it
    occupant_id: str | None = None
    codes: frozenset[int] = frozenset()
    new_nick: str | None = None  # with 303
    destroyed: bool = False


@dataclass(frozen=True)
class Subject:
    """A room's subject, as a message from the room carried it (XEP-0045 §8.1)."""

    room: str
    nick: str | None  # who set it, as the room says (None: the room itself)
    text: str
    delayed: bool  # sent with a delay stamp: the current subject on joining, not a change


# --- what the store holds and changed ---------------------------------------------------


# How a change arrived: a direct message, a room, the command line, the bot itself, an
# ad-hoc command (XEP-0050), or an invitation to a room (XEP-0249 / XEP-0045).
Via = Literal["dm", "room", "cli", "bot", "adhoc", "invite"]


@dataclass(frozen=True)
class Actor:
    """Who asks, as recorded in the audit log: a bare JID (or local user) and the channel."""

    who: str
    via: Via


@dataclass(frozen=True)
class AddinInfo:
    name: str
    url: str
    pool: str
    created_by: str
    created_at: datetime
    rooms: tuple[str, ...]
    was: str | None = None  # after a rename: the name it had, as it was stored


@dataclass(frozen=True)
class AddinPage:
    pool: str
    items: tuple[tuple[str, str, int], ...]  # name, URL, rooms using it
    page: int
    pages: int
    total: int


@dataclass(frozen=True)
class Listed:
    """One add-in as a whole list holds it: its pool, name, URL and how many rooms use it."""

    pool: str
    name: str
    url: str
    rooms: int


@dataclass(frozen=True)
class Row:
    """One add-in of a bulk import, checked: where it stood in the file, and what it says."""

    line: int
    pool: str
    name: str
    url: str


@dataclass(frozen=True)
class Planned:
    """What an import does (or, dry, would do) with one row: `register` a new add-in, give
    an existing one a new URL (`update-url`, `was` the old one), or nothing (`unchanged`).
    `name` is the stored name where the add-in exists."""

    line: int
    action: Literal["register", "update-url", "unchanged"]
    pool: str
    name: str
    url: str
    was: str | None = None


@dataclass(frozen=True)
class RoomInfo:
    jid: str
    addin: str | None
    url: str | None
    joined: bool
    stopped_reason: str | None
    managers: tuple[str, ...] = ()  # the JIDs its owners named (`managers add`)
    pin: bool | None = None  # `pin on|off`; None: the configuration's announce.pin
    pin_tail: str | None = None  # the tail the bot last wrote on its subject


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    via: str
    action: str
    pool: str | None
    addin: str | None
    room: str | None
    detail: str


@dataclass(frozen=True)
class Change:
    """A change to announce, with the rooms it concerns as they are now, read with it:
    for an attach, the room; for a URL update, the rooms whose add-in has that URL."""

    entry: AuditEntry
    rooms: tuple[RoomInfo, ...] = ()


@dataclass(frozen=True)
class Removed:
    name: str  # as it was registered
    rooms: tuple[str, ...]  # those it was detached from (only with force)


@dataclass(frozen=True)
class Done(Generic[_T]):
    """What an operation returns: its result, and the changes it committed (each with its
    audit row, oldest first) for the announcer; none when it changed nothing."""

    result: _T
    changes: tuple[Change, ...] = ()

    def then(self, make: Callable[[_T], _U]) -> Done[_U]:
        """The same changes, with `make(result)` as the result (e.g. the reply saying it)."""
        return Done(make(self.result), self.changes)
