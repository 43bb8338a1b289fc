"""`bot.policy`: the permission table — one test per rule, over plain values — and proof that
chat, the forms and invitations ask these same rules rather than deciding for themselves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from bot import policy
from bot.commands.direct import DIRECT
from bot.commands.registry import Dispatcher
from bot.commands.room import ROOM as ROOM_COMMANDS
from bot.config import Settings
from bot.invitations import Invitation, Invitations
from bot.rooms import SELF, Rooms
from bot.values import Place, Presence, Role, Sender
from bot.xmpp import panel
from tests.fakes import FakeEdge

ROOM = "dev@conference.localhost"
ADMINS = frozenset({"admin@localhost"})
NOT_MANAGER = f"Only the owners and admins of {ROOM} may do that."


@dataclass
class Person:
    affiliation: str
    jid: str | None = None


@dataclass
class View:
    occupants: Mapping[str, Person] = field(default_factory=dict)
    joined: bool = True
    shows_jids: bool = True


# --- admins --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jid", "admin"),
    [("admin@localhost", True), ("ADMIN@localhost", True), ("mallory@localhost", False),
     (None, False), ("admin@localhost.evil", False)],
)
def test_an_admin_is_a_configured_jid_the_server_vouches_for(jid: str | None, admin: bool) -> None:
    assert policy.is_admin(ADMINS, jid) is admin


@pytest.mark.parametrize(
    ("sender", "held"),
    [(Sender("admin@localhost"), False),  # an admin by direct message: never silenced
     (Sender("mallory@localhost"), True),
     (Sender("admin@localhost", ROOM, "admin"), True),  # in a room: its limits hold
     (Sender(None, ROOM, "admin"), True)],
)
def test_the_per_sender_limit_holds_everyone_but_an_admin_writing_directly(
    sender: Sender, held: bool
) -> None:
    assert policy.held_to_sender_limit(ADMINS, sender) is held


# --- room managers -------------------------------------------------------------------------


@pytest.mark.parametrize(("affiliation", "manages"), [
    ("owner", True), ("admin", True), ("member", False), ("none", False), ("outcast", False),
])
def test_in_the_room_the_occupants_affiliation_decides(affiliation: str, manages: bool) -> None:
    view = View({"carol": Person(affiliation)})
    refusal = policy.manager_refusal(ROOM, view, Sender(None, ROOM, "carol"))
    assert (refusal is None) is manages
    if not manages:
        assert refusal == NOT_MANAGER


def test_in_the_room_a_nickname_nobody_holds_manages_nothing() -> None:
    view = View({"carol": Person("owner")})
    assert policy.manager_refusal(ROOM, view, Sender(None, ROOM, "Carol")) == NOT_MANAGER


def test_by_direct_message_the_real_jid_the_room_shows_decides() -> None:
    view = View({"c": Person("owner", "carol@localhost"), "d": Person("member", "dave@localhost")})
    assert policy.manager_refusal(ROOM, view, Sender("carol@localhost")) is None
    assert policy.manager_refusal(ROOM, view, Sender("dave@localhost")) == NOT_MANAGER
    assert policy.manager_refusal(ROOM, view, Sender("erin@localhost")) == (
        f"You must be in {ROOM} as one of its owners or admins to do that."
    )
    assert policy.manager_refusal(ROOM, view, Sender(None)) == NOT_MANAGER


def test_a_room_that_hides_real_jids_says_why_it_cannot_tell() -> None:
    view = View({"carol": Person("owner")}, shows_jids=False)
    refusal = policy.manager_refusal(ROOM, view, Sender("carol@localhost"))
    assert refusal is not None
    assert refusal.startswith(f"{ROOM} does not show the bot its occupants' real addresses")


@pytest.mark.parametrize("view", [None, View({"carol": Person("owner")}, joined=False)])
def test_nobody_manages_a_room_the_bot_is_not_in(view: View | None) -> None:
    assert policy.manager_refusal(ROOM, view, Sender(None, ROOM, "carol")) == (
        f"The bot is not in {ROOM}, so it cannot see who manages it."
    )


def test_managed_rooms_are_those_where_the_jid_is_seen_managing() -> None:
    views = {
        ROOM: View({"c": Person("owner", "carol@localhost")}),
        "b@conference.localhost": View({"c": Person("member", "carol@localhost")}),
        "a@conference.localhost": View({"c": Person("admin", "carol@localhost")}),
    }
    assert policy.managed_rooms(views, "carol@localhost") == ["a@conference.localhost", ROOM]
    assert policy.managed_rooms(views, "dave@localhost") == []


# --- named managers (issue 14) --------------------------------------------------------------

NAMED = frozenset({"nora@localhost"})


def test_a_named_manager_is_recognised_in_the_room_by_the_jid_the_room_reports() -> None:
    view = View({"nora": Person("member", "nora@localhost"), "fake": Person("none", "eve@x")})
    assert policy.manager_refusal(ROOM, view, Sender("nora@localhost", ROOM, "nora"), NAMED) is None
    # Someone else under the named manager's usual nickname: the room's JID decides.
    impostor = View({"nora": Person("none", "mallory@localhost")})
    assert policy.manager_refusal(ROOM, impostor, Sender(None, ROOM, "nora"), NAMED) == (
        f"Only the owners, admins and named managers of {ROOM} may do that."
    )


def test_a_named_manager_of_another_room_manages_nothing_here() -> None:
    view = View({"nora": Person("member", "nora@localhost")})
    for sender in (Sender(None, ROOM, "nora"), Sender("nora@localhost")):
        assert policy.manager_refusal(ROOM, view, sender, frozenset()) == NOT_MANAGER


def test_in_a_room_hiding_real_jids_a_named_manager_is_told_to_write_directly() -> None:
    view = View({"nora": Person("member")}, shows_jids=False)
    refusal = policy.manager_refusal(ROOM, view, Sender(None, ROOM, "nora"), NAMED)
    assert refusal is not None
    assert "send the command to the bot directly from the named account" in refusal
    # ...where the server vouches for the account: named is enough, in the room or not.
    assert policy.manager_refusal(ROOM, view, Sender("nora@localhost"), NAMED) is None
    assert policy.manager_refusal(ROOM, None, Sender("nora@localhost"), NAMED) is None


def test_only_owners_own_a_room() -> None:
    view = View({"o": Person("owner", "olivia@localhost"), "a": Person("admin", "adam@localhost"),
                 "nora": Person("member", "nora@localhost")})
    assert policy.owner_refusal(ROOM, view, Sender(None, ROOM, "o")) is None
    assert policy.owner_refusal(ROOM, view, Sender("olivia@localhost")) is None
    for sender in (Sender(None, ROOM, "a"), Sender(None, ROOM, "nora"), Sender("adam@localhost")):
        assert policy.owner_refusal(ROOM, view, sender) == f"Only the owners of {ROOM} may do that."
    assert policy.owner_refusal(ROOM, None, Sender(None, ROOM, "o")) == (
        f"The bot is not in {ROOM}, so it cannot see who owns it."
    )


def test_managed_rooms_include_those_naming_the_jid() -> None:
    views = {ROOM: View({"c": Person("member", "nora@localhost")})}
    named = {"b@conference.localhost": NAMED}
    assert policy.managed_rooms(views, "nora@localhost", named) == ["b@conference.localhost"]
    assert policy.owned_rooms({ROOM: View({"c": Person("owner", "nora@localhost")})},
                              "nora@localhost") == [ROOM]


@pytest.mark.parametrize(("person", "kept"), [
    ("jid:bob@localhost", True), ("id:abc", True), ("nick:bob", False), (None, False),
])
def test_a_mute_is_kept_only_for_a_person_the_room_vouches_for(
    person: str | None, kept: bool
) -> None:
    assert (policy.mute_refusal(person) is None) is kept


@pytest.mark.parametrize(("in_room", "role", "open_", "allowed", "says"), [
    (True, "moderator", False, True, ""),
    (True, "moderator", None, True, ""),
    (True, "participant", True, True, ""),
    (True, "participant", False, False, "muc#roomconfig_changesubject"),
    (True, "participant", None, False, "make the bot a moderator"),
    (True, "visitor", True, False, "give the bot voice"),
    (False, None, True, False, "The bot is not in"),
])
def test_the_bot_may_change_the_subject_as_moderator_or_where_occupants_may(
    in_room: bool, role: str | None, open_: bool | None, allowed: bool, says: str
) -> None:
    refusal = policy.subject_refusal(ROOM, in_room=in_room, role=role, occupants_may=open_)
    assert (refusal is None) is allowed
    if refusal is not None:
        assert says in refusal


# --- commands and forms --------------------------------------------------------------------


@pytest.mark.parametrize(("admin", "manager", "owner", "held"), [
    (True, False, False, Role.ADMIN), (True, True, True, Role.ADMIN),
    (False, True, False, Role.MANAGER), (False, True, True, Role.OWNER),
    (False, False, False, Role.ANYONE),
])
def test_the_role_held(admin: bool, manager: bool, owner: bool, held: Role) -> None:
    assert policy.level(admin=admin, manager=manager, owner=owner) is held


@pytest.mark.parametrize("needed", list(Role))
@pytest.mark.parametrize("held", list(Role))
def test_a_command_is_run_by_whoever_holds_its_role_or_more(needed: Role, held: Role) -> None:
    assert policy.may_run(needed, held) is (held >= needed)


def test_an_admins_command_is_refused_to_others_with_its_name() -> None:
    assert policy.role_refusal(Role.ADMIN, admin=False, command="register") == (
        "Only an addinbot admin may run register."
    )
    assert policy.role_refusal(Role.ADMIN, admin=True, command="register") is None
    assert policy.role_refusal(Role.MANAGER, admin=False, command="attach") is None


def test_a_form_requester_manages_where_seen_managing() -> None:
    assert policy.held_for_forms(admin=False, managed=[ROOM]) is Role.MANAGER
    assert policy.held_for_forms(admin=False, managed=[]) is Role.ANYONE
    assert policy.held_for_forms(admin=True, managed=[]) is Role.ADMIN


def test_direct_only_commands_are_refused_through_a_room() -> None:
    refusal = policy.direct_only_refusal("register", {"register", "list"}, {"list"})
    assert refusal is not None
    assert refusal.startswith("Send “register” to the bot directly")
    assert policy.direct_only_refusal("list", {"register", "list"}, {"list"}) is None
    assert policy.direct_only_refusal("nonsense", {"register"}, {"list"}) is None


# --- invitations ---------------------------------------------------------------------------


def check(inviter: str | None, *, mediated: bool = False, exists: bool | None = True
          ) -> policy.InvitationCheck:
    return policy.InvitationCheck(inviter, ROOM, mediated, exists)


def test_an_admins_invitation_is_accepted_outright() -> None:
    assert policy.accept_outright(ADMINS, check("admin@localhost"))
    assert not policy.accept_outright(ADMINS, check("carol@localhost"))
    assert not policy.accept_outright(ADMINS, check(None))


@pytest.mark.parametrize(("invitation", "refused"), [
    (check("carol@localhost"), None),
    (check("carol@localhost", mediated=True, exists=None), None),
    (check(None), "the invitation does not show who sent it"),
    (check("carol@localhost", exists=False), f"there is no room {ROOM}."),
    (check("carol@localhost", exists=None), f"the bot could not check that {ROOM} exists"),
])
def test_anyone_elses_invitation_is_looked_at_only_when_it_can_be_checked(
    invitation: policy.InvitationCheck, refused: str | None
) -> None:
    refusal = policy.look_refusal(invitation)
    if refused is None:
        assert refusal is None
    else:
        assert refusal is not None
        assert refusal.startswith(refused)


def test_a_looked_at_invitation_stands_if_the_inviter_manages_the_room() -> None:
    view = View({"c": Person("owner", "carol@localhost"), "d": Person("member", "dave@localhost")})
    assert policy.invitation_refusal(ROOM, view, "carol@localhost") is None
    assert policy.invitation_refusal(ROOM, view, "dave@localhost") == NOT_MANAGER


# --- every path asks the same rule ----------------------------------------------------------

SENTINEL = "refused by the one rule"


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Sender]]:
    """policy.manager_refusal replaced by a spy that refuses everyone with SENTINEL."""
    calls: list[tuple[str, Sender]] = []

    def spy(room: str, _view: object, sender: Sender, *_named: object) -> str:
        calls.append((room, sender))
        return SENTINEL

    monkeypatch.setattr(policy, "manager_refusal", spy)
    return calls


def live_rooms() -> Rooms:
    rooms = Rooms()
    rooms.joining(ROOM, "AddinBot")
    rooms.update(Presence(ROOM, "carol", True, "owner", "moderator", "carol@localhost"))
    rooms.update(Presence(ROOM, "AddinBot", True, codes=frozenset({SELF})))
    return rooms


async def test_chat_asks_the_rule(
    asked: list[tuple[str, Sender]], settings: Callable[..., Settings]
) -> None:
    commands = {Place.DIRECT: DIRECT, Place.ROOM: ROOM_COMMANDS}
    dispatcher = Dispatcher(
        settings(), None, live_rooms(), commands, changed=lambda _changes: None,  # type: ignore[arg-type]
    )
    owner = Sender("carol@localhost", ROOM, "carol")

    reply = await dispatcher.run(Place.ROOM, owner, "attach Wiki")
    direct = await dispatcher.run(Place.DIRECT, Sender("carol@localhost"), f"detach {ROOM}")

    assert reply is not None
    assert reply.text == SENTINEL
    assert direct is not None
    assert direct.text == SENTINEL
    assert asked[0] == (ROOM, owner)
    assert (ROOM, Sender("carol@localhost")) in asked


def test_the_forms_ask_the_rule(
    asked: list[tuple[str, Sender]], settings: Callable[..., Settings]
) -> None:
    operation = panel.OPERATIONS["attach"]
    requester = panel.Requester("carol@localhost", False, (ROOM,))

    refusal = panel.manager_refusal(
        operation, requester, settings(), live_rooms(), {operation.room_field or "": ROOM}
    )

    assert refusal == SENTINEL
    assert asked == [(ROOM, Sender("carol@localhost"))]


# Several processes: a form about a room another process serves is decided by what that
# process vouched for when asked (panel.Requester.elsewhere), never by this one's empty view.
ELSEWHERE = "far@conference.localhost"


@pytest.mark.parametrize(("node", "values", "elsewhere", "served_elsewhere", "refusal"), [
    ("attach", {}, {ELSEWHERE: False}, True, None),  # an admin there: a manager's command
    ("managers", {}, {ELSEWHERE: False}, True, None),
    ("managers", {"add": "dave@localhost"}, {ELSEWHERE: True}, True, None),  # an owner there
    ("managers", {"add": "dave@localhost"}, {ELSEWHERE: False}, True,
     f"Only the owners of {ELSEWHERE} may do that."),
    ("attach", {}, {}, True, f"Only the owners and admins of {ELSEWHERE} may do that."),
    ("managers", {"remove": "dave@localhost"}, {}, True,
     f"Only the owners of {ELSEWHERE} may do that."),
    ("attach", {}, {}, False,  # nobody serves it: this process's rule, which cannot see it
     f"The bot is not in {ELSEWHERE}, so it cannot see who manages it."),
])
def test_a_form_about_a_room_another_process_serves_takes_its_word(
    node: str, values: dict[str, str], elsewhere: dict[str, bool], served_elsewhere: bool,
    refusal: str | None, settings: Callable[..., Settings],
) -> None:
    operation = panel.OPERATIONS[node]
    requester = panel.Requester("carol@localhost", False, tuple(elsewhere), elsewhere)
    given = {operation.room_field or "": ELSEWHERE, **values}

    said = panel.manager_refusal(operation, requester, settings(), live_rooms(), given,
                                 served_elsewhere=served_elsewhere)

    assert said == refusal


async def test_invitations_ask_the_rule(
    asked: list[tuple[str, Sender]], settings: Callable[..., Settings]
) -> None:
    rooms, transport = Rooms(), FakeEdge()
    declined: list[str] = []
    spawned: list[Any] = []

    def spawn(work: Any) -> None:
        spawned.append(work)
        work.close()  # the audit row of the decline: not what this test is about

    invitations = Invitations(
        settings(), None, rooms, transport,  # type: ignore[arg-type]
        nick=lambda: "AddinBot", serving=lambda _room: False,
        keep=lambda _room, _keep: None, spawn=spawn, changed=lambda _changes: None,
    )
    invitations.receive(
        Invitation(ROOM, "carol@localhost", "carol@localhost", False, True), declined.append
    )
    rooms.update(Presence(ROOM, "carol", True, "owner", "moderator", "carol@localhost"))
    rooms.update(Presence(ROOM, "AddinBot", True, codes=frozenset({SELF})))
    invitations.joined(ROOM)
    await asyncio.sleep(0)

    assert declined == [SENTINEL]
    assert asked == [(ROOM, Sender("carol@localhost"))]
    assert transport.left == [ROOM]
    invitations.stop()
