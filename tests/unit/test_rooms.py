"""`bot.rooms.Rooms`: who is in each room, who arrived, who manages it — from plain presences."""

from __future__ import annotations

import pytest

from bot import policy
from bot.rooms import (
    BANNED,
    KICKED,
    NICK_CHANGED,
    NICK_FIXED,
    NON_ANONYMOUS,
    REMOVED_AFFILIATION,
    SELF,
    SHUTDOWN,
    Arrival,
    Exit,
    Gone,
    Joined,
    Occupant,
    Promoted,
    Rooms,
)
from bot.values import Presence, Sender

ROOM = "dev@conference.localhost"
BOT = "AddinBot"
NOT_MANAGER = f"Only the owners and admins of {ROOM} may do that."


def here(nick: str, affiliation: str = "member", *, jid: str | None = None,
         occupant_id: str | None = None, codes: frozenset[int] = frozenset()) -> Presence:
    role = "moderator" if affiliation in ("owner", "admin") else "participant"
    return Presence(ROOM, nick, True, affiliation, role, jid, occupant_id, codes)


def gone(nick: str, *codes: int, new_nick: str | None = None, destroyed: bool = False) -> Presence:
    return Presence(ROOM, nick, False, codes=frozenset(codes), new_nick=new_nick,
                    destroyed=destroyed)


def own(nick: str = BOT, *codes: int) -> Presence:
    return here(nick, "none", codes=frozenset({SELF, *codes}))


def joining() -> Rooms:
    rooms = Rooms()
    rooms.joining(ROOM, BOT)
    return rooms


def joined(*occupants: Presence, own_codes: tuple[int, ...] = ()) -> Rooms:
    """A room the bot has joined, with `occupants` already there when it did."""
    rooms = joining()
    for presence in occupants:
        assert rooms.update(presence) == []
    assert rooms.update(own(BOT, *own_codes)) == [Joined(ROOM)]
    return rooms


def refusal(rooms: Rooms, room: str, sender: Sender) -> str | None:
    """The permission rule (bot.policy) over what the tracker knows of `room`."""
    return policy.manager_refusal(room, rooms.state(room), sender)


def in_room(nick: str) -> Sender:
    return Sender(None, ROOM, nick)


# --- arrivals ------------------------------------------------------------------------------


def test_occupants_present_before_the_bot_joined_are_not_arrivals() -> None:
    rooms = joining()
    assert rooms.update(here("alice")) == []
    assert rooms.update(here("bob", "owner")) == []
    assert not rooms.is_live(ROOM)

    assert rooms.update(own()) == [Joined(ROOM)]

    assert rooms.is_live(ROOM)
    assert rooms.occupant(ROOM, "alice") is not None
    assert rooms.update(here("alice")) == []  # a later status change is no arrival either


def test_a_new_nick_after_the_bot_joined_is_one_arrival() -> None:
    rooms = joined(here("alice"))

    changes = rooms.update(here("carol", jid="carol@localhost", occupant_id="oc1"))

    assert changes == [
        Arrival(ROOM, Occupant("carol", "member", "participant", "carol@localhost", "oc1"))
    ]
    assert rooms.update(here("carol", jid="carol@localhost")) == []  # she was already there


def test_the_bot_itself_is_never_an_arrival() -> None:
    rooms = joined()
    assert rooms.update(own()) == []
    assert rooms.update(here(BOT)) == []
    assert rooms.nick_in(ROOM) == BOT


def test_a_nick_change_is_not_an_arrival() -> None:
    rooms = joined(here("alice", jid="alice@localhost"))

    assert rooms.update(gone("alice", NICK_CHANGED, new_nick="alicia")) == []
    assert rooms.update(here("alicia", jid="alice@localhost")) == []

    assert rooms.occupant(ROOM, "alice") is None
    assert rooms.occupant(ROOM, "alicia") is not None
    # a different person arriving later under the old nick is an arrival
    assert len(rooms.update(here("alice"))) == 1


def test_leaving_and_coming_back_is_an_arrival_again() -> None:
    rooms = joined(here("alice"))
    assert rooms.update(gone("alice")) == []
    assert rooms.occupant(ROOM, "alice") is None
    assert [type(c) for c in rooms.update(here("alice"))] == [Arrival]
    assert rooms.update(gone("alice")) == []
    assert [type(c) for c in rooms.update(here("alice"))] == [Arrival]


def test_a_presence_for_a_room_the_bot_is_not_in_is_ignored() -> None:
    rooms = Rooms()
    assert rooms.update(here("alice")) == []
    assert rooms.occupant(ROOM, "alice") is None


@pytest.mark.parametrize(
    ("presence", "person"),
    [
        (here("alice", jid="alice@localhost", occupant_id="oc1"), "jid:alice@localhost"),
        (here("alice", occupant_id="oc1"), "id:oc1"),
        (here("alice"), "nick:alice"),
    ],
)
def test_an_arrival_names_the_person_as_firmly_as_the_room_allows(
    presence: Presence, person: str
) -> None:
    [arrival] = joined().update(presence)
    assert isinstance(arrival, Arrival)
    assert arrival.occupant.person == person


# --- the bot's own presence ----------------------------------------------------------------


def test_a_nick_fixed_by_the_service_becomes_the_bots_nick() -> None:
    rooms = joining()
    assert rooms.update(own("AddinBot (2)", NICK_FIXED)) == [Joined(ROOM)]
    assert rooms.nick_in(ROOM) == "AddinBot (2)"
    # somebody else called AddinBot is just a participant
    assert [type(c) for c in rooms.update(here(BOT))] == [Arrival]


def test_the_bots_own_nick_change_is_followed() -> None:
    rooms = joined()
    assert rooms.update(gone(BOT, SELF, NICK_CHANGED, new_nick="Helper")) == []
    assert rooms.update(own("Helper")) == []
    assert rooms.nick_in(ROOM) == "Helper"
    assert rooms.is_live(ROOM)


@pytest.mark.parametrize(
    ("codes", "destroyed", "why"),
    [
        ((KICKED,), False, Exit.KICKED),
        ((BANNED,), False, Exit.BANNED),
        ((), True, Exit.DESTROYED),
        ((REMOVED_AFFILIATION,), False, Exit.REMOVED),
        ((SHUTDOWN,), False, Exit.SHUTDOWN),
        ((), False, Exit.LEFT),
    ],
)
def test_the_bots_own_exit_says_why(
    codes: tuple[int, ...], destroyed: bool, why: Exit
) -> None:
    rooms = joined(here("alice", "owner"))

    assert rooms.update(gone(BOT, SELF, *codes, destroyed=destroyed)) == [Gone(ROOM, why)]

    assert not rooms.is_live(ROOM)
    assert rooms.occupant(ROOM, "alice") is None
    assert refusal(rooms, ROOM, in_room("alice")) == (
        f"The bot is not in {ROOM}, so it cannot see who manages it."
    )


# --- managers ------------------------------------------------------------------------------


@pytest.mark.parametrize("affiliation", ["owner", "admin"])
def test_owners_and_admins_in_the_room_manage_it(affiliation: str) -> None:
    rooms = joined(here("carol", affiliation))
    assert refusal(rooms, ROOM, in_room("carol")) is None


@pytest.mark.parametrize("affiliation", ["member", "none", "outcast"])
def test_other_occupants_do_not(affiliation: str) -> None:
    rooms = joined(here("dave", affiliation))
    assert refusal(rooms, ROOM, in_room("dave")) == NOT_MANAGER


def test_an_affiliation_change_while_present_is_followed() -> None:
    rooms = joined(here("carol", "owner"))
    assert refusal(rooms, ROOM, in_room("carol")) is None

    assert rooms.update(here("carol", "member")) == []
    assert refusal(rooms, ROOM, in_room("carol")) == NOT_MANAGER

    assert rooms.update(here("carol", "admin")) == []
    assert refusal(rooms, ROOM, in_room("carol")) is None


def test_a_departed_managers_nick_taken_by_someone_else_manages_nothing() -> None:
    rooms = joined(here("carol", "owner"))
    rooms.update(gone("carol"))
    rooms.update(here("carol", "none"))
    assert refusal(rooms, ROOM, in_room("carol")) == NOT_MANAGER


def test_a_departed_manager_manages_nothing() -> None:
    rooms = joined(here("carol", "owner"))
    rooms.update(gone("carol"))
    assert refusal(rooms, ROOM, in_room("carol")) == NOT_MANAGER


@pytest.mark.parametrize("lookalike", ["carol ", " carol", "car\u200bol", "Carol", "cаrol"])
def test_a_look_alike_nick_is_not_the_manager(lookalike: str) -> None:
    rooms = joined(here("carol", "owner"))
    assert refusal(rooms, ROOM, in_room(lookalike)) == NOT_MANAGER


def test_a_direct_message_sender_is_found_by_real_jid_where_the_room_shows_it() -> None:
    rooms = joined(
        here("carol", "owner", jid="carol@localhost"),
        here("dave", "member", jid="dave@localhost"),
    )

    assert refusal(rooms, ROOM, Sender("carol@localhost")) is None
    assert refusal(rooms, ROOM, Sender("dave@localhost")) == NOT_MANAGER
    assert refusal(rooms, ROOM, Sender("erin@localhost")) == (
        f"You must be in {ROOM} as one of its owners or admins to do that."
    )
    assert refusal(rooms, ROOM, Sender(None)) == NOT_MANAGER
    assert policy.managed_rooms(rooms.rooms, "carol@localhost") == [ROOM]
    assert policy.managed_rooms(rooms.rooms, "dave@localhost") == []


def test_a_manager_is_known_by_jid_even_under_another_nick() -> None:
    rooms = joined(here("carol", "owner", jid="carol@localhost"))
    assert refusal(rooms, ROOM, Sender("carol@localhost", None, "not-carol")) is None


def test_a_semi_anonymous_room_explains_why_it_cannot_tell() -> None:
    rooms = joined(here("carol", "owner"))

    said = refusal(rooms, ROOM, Sender("carol@localhost"))

    assert said is not None
    assert said.startswith(f"{ROOM} does not show the bot its occupants' real addresses")
    assert "Run the command in the room" in said
    # in the room itself, by nick, she is recognised
    assert refusal(rooms, ROOM, in_room("carol")) is None


def test_a_non_anonymous_room_is_known_from_the_bots_own_presence() -> None:
    rooms = joined(own_codes=(NON_ANONYMOUS,))
    assert refusal(rooms, ROOM, Sender("erin@localhost")) == (
        f"You must be in {ROOM} as one of its owners or admins to do that."
    )


def test_a_room_being_joined_has_no_managers_yet() -> None:
    rooms = joining()
    rooms.update(here("carol", "owner", jid="carol@localhost"))
    expected = f"The bot is not in {ROOM}, so it cannot see who manages it."
    assert refusal(rooms, ROOM, in_room("carol")) == expected
    assert refusal(rooms, "other@conference.localhost", Sender("carol@localhost")) == (
        "The bot is not in other@conference.localhost, so it cannot see who manages it."
    )


def test_joining_again_forgets_what_was_known() -> None:
    rooms = joined(here("carol", "owner"))
    rooms.joining(ROOM, BOT)
    assert not rooms.is_live(ROOM)
    assert rooms.occupant(ROOM, "carol") is None
    rooms.clear()
    assert rooms.nick_in(ROOM) is None


def test_made_a_moderator_where_no_real_jid_was_shown_the_bot_asks_for_the_occupants() -> None:
    """ejabberd 23.01 does not re-send occupants' presences (with their JIDs) to a new
    moderator as Prosody does: the bot asks once, by joining again (bot.app)."""
    rooms = joined(here("carol", "owner"))
    promoted = here(BOT, "admin", codes=frozenset({SELF}))
    assert rooms.update(promoted) == [Promoted(ROOM)]
    assert rooms.update(promoted) == []  # already a moderator: nothing new
    assert rooms.update(here("carol", "owner", jid="carol@localhost")) == []  # the answer
    assert refusal(rooms, ROOM, Sender("carol@localhost")) is None


def test_made_a_moderator_where_real_jids_show_anyway_the_bot_asks_nothing() -> None:
    rooms = joined(here("carol", "owner", jid="carol@localhost"))
    assert rooms.update(here(BOT, "admin", codes=frozenset({SELF}))) == []
