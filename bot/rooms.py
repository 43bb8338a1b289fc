"""Who is in each room and who manages it, from the room's own presence.

Plain state fed with plain values by the XMPP edge. The MUC service vouches for an
occupant's affiliation, role and (in a non-anonymous room, or to a moderator) real JID;
a nickname proves nothing.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from bot.values import Presence

# MUC status codes (XEP-0045 §15.6)
SELF = 110
CREATED = 201  # the join created the room: it did not exist
NON_ANONYMOUS = 100
NOW_NON_ANONYMOUS = 172
NOW_SEMI_ANONYMOUS = 173
NOW_FULLY_ANONYMOUS = 174
BANNED = 301
NICK_CHANGED = 303
KICKED = 307
NICK_FIXED = 210
CONFIG_CHANGED = 104
REMOVED_AFFILIATION = 321
REMOVED_MEMBERS_ONLY = 322
SHUTDOWN = 332


@dataclass(slots=True)  # one per occupant of every room: no __dict__ each
class Occupant:
    nick: str
    affiliation: str
    role: str
    jid: str | None
    occupant_id: str | None

    @property
    def person(self) -> str:
        """Who this is, as firmly as the room lets us say: real JID, occupant id, or nick."""
        if self.jid:
            return f"jid:{self.jid}"
        if self.occupant_id:
            return f"id:{self.occupant_id}"
        return f"nick:{self.nick}"


class Exit(enum.Enum):
    """Why the bot is no longer in a room."""

    LEFT = "left"
    KICKED = "kicked"
    BANNED = "banned"
    DESTROYED = "room destroyed"
    REMOVED = "removed (affiliation change or members-only)"
    SHUTDOWN = "service shut down"


@dataclass(slots=True)  # one per room: no __dict__ each
class RoomState:
    jid: str
    nick: str
    joined: bool = False  # our own presence (110) arrived: what follows is live
    occupants: dict[str, Occupant] = field(default_factory=dict)
    # Nicks arriving by a 303 change: made on the first one (an empty set is 216 bytes,
    # in every room).
    renamed: set[str] | None = None
    shows_jids: bool = False  # the room gives us occupants' real JIDs
    subject: str | None = None  # the room's subject, once it has sent it (after our join)

    @property
    def me(self) -> Occupant | None:
        return self.occupants.get(self.nick)


@dataclass(frozen=True)
class Arrival:
    """A participant who joined while the bot was there: to be told the room's add-in."""

    room: str
    occupant: Occupant


@dataclass(frozen=True)
class Joined:
    room: str


@dataclass(frozen=True)
class Created:
    """The bot's join created the room (status 201): the room did not exist. The bot is
    out of it at once (forgotten here); the app has the room destroyed."""

    room: str


@dataclass(frozen=True)
class Gone:
    room: str
    why: Exit


@dataclass(frozen=True)
class Promoted:
    """The bot became a moderator in a room that has shown it no real JID. Prosody then
    re-sends every occupant's presence, JIDs included; ejabberd (23.01) does not, but
    answers a repeated join presence with the whole occupant list: the app sends one."""

    room: str


Change = Arrival | Joined | Created | Gone | Promoted


class Rooms:
    """Every room the bot is in or joining."""

    def __init__(self) -> None:
        self.rooms: dict[str, RoomState] = {}
        # The JIDs each room's owners named as its managers, as stored (kept whether the
        # bot is in the room or not; followed from the audit log).
        self.named_managers: dict[str, frozenset[str]] = {}
        # Whether each room lets its occupants change the subject, as its disco#info last
        # said (muc#roomconfig_changesubject; None: not said, or not asked yet).
        self.subject_config: dict[str, bool | None] = {}

    def own_role(self, room: str) -> str | None:
        state = self.rooms.get(room)
        me = state.me if state is not None and state.joined else None
        return me.role if me is not None else None

    def subject_open(self, room: str) -> bool | None:
        return self.subject_config.get(room)

    def named(self, room: str) -> frozenset[str]:
        return self.named_managers.get(room, frozenset())

    def name_managers(self, room: str, jids: frozenset[str]) -> None:
        if jids:
            self.named_managers[room] = jids
        else:
            self.named_managers.pop(room, None)

    def joining(self, room: str, nick: str) -> None:
        """A join was sent: forget what we knew; the room will tell us again."""
        self.rooms[room] = RoomState(room, nick)

    def forget(self, room: str) -> None:
        self.rooms.pop(room, None)

    def clear(self) -> None:
        """The stream is gone, and with it every room membership."""
        self.rooms.clear()

    def is_live(self, room: str) -> bool:
        state = self.rooms.get(room)
        return state is not None and state.joined

    def nick_in(self, room: str) -> str | None:
        state = self.rooms.get(room)
        return state.nick if state else None

    def occupant(self, room: str, nick: str) -> Occupant | None:
        state = self.rooms.get(room)
        return state.occupants.get(nick) if state else None

    def update(self, presence: Presence) -> list[Change]:
        state = self.rooms.get(presence.room)
        if state is None:
            return []
        if SELF in presence.codes or (not state.joined and presence.nick == state.nick):
            return self._own(state, presence)
        if not presence.available:
            state.occupants.pop(presence.nick, None)
            if NICK_CHANGED in presence.codes and presence.new_nick:
                if state.renamed is None:
                    state.renamed = set()
                state.renamed.add(presence.new_nick)
            return []
        known = presence.nick in state.occupants
        occupant = _occupant(presence)
        state.occupants[presence.nick] = occupant
        if occupant.jid:
            state.shows_jids = True
        if state.renamed and presence.nick in state.renamed:
            state.renamed.discard(presence.nick)
            return []
        if known or not state.joined:
            return []
        return [Arrival(state.jid, occupant)]

    def _own(self, state: RoomState, presence: Presence) -> list[Change]:
        if presence.available:
            was = state.me
            state.nick = presence.nick  # the service may have changed it (210)
            state.occupants[presence.nick] = _occupant(presence)
            if presence.codes & {NON_ANONYMOUS, NOW_NON_ANONYMOUS}:
                state.shows_jids = True
            if NOW_SEMI_ANONYMOUS in presence.codes:
                state.shows_jids = False
            if not state.joined:
                if CREATED in presence.codes:
                    self.rooms.pop(state.jid, None)  # what the room says next is not heard
                    return [Created(state.jid)]
                state.joined = True
                return [Joined(state.jid)]
            promoted = presence.role == "moderator" and was is not None and was.role != "moderator"
            return [Promoted(state.jid)] if promoted and not state.shows_jids else []
        if NICK_CHANGED in presence.codes and presence.new_nick:
            state.occupants.pop(presence.nick, None)
            state.nick = presence.new_nick
            return []
        self.rooms.pop(state.jid, None)
        return [Gone(state.jid, _exit(presence))]

    def state(self, room: str) -> RoomState | None:
        """What the bot knows of `room` (for the permission rules, bot.policy)."""
        return self.rooms.get(room)


def _occupant(presence: Presence) -> Occupant:
    return Occupant(
        presence.nick, presence.affiliation, presence.role, presence.jid, presence.occupant_id
    )


def _exit(presence: Presence) -> Exit:
    if presence.destroyed:
        return Exit.DESTROYED
    if BANNED in presence.codes:
        return Exit.BANNED
    if KICKED in presence.codes:
        return Exit.KICKED
    if presence.codes & {REMOVED_AFFILIATION, REMOVED_MEMBERS_ONLY}:
        return Exit.REMOVED
    if SHUTDOWN in presence.codes:
        return Exit.SHUTDOWN
    return Exit.LEFT
