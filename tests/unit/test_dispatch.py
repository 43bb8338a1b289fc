"""The dispatcher with the real commands, a real store and a room tracker: what people type and
what they read back."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from bot import addins
from bot.commands.direct import DIRECT
from bot.commands.registry import Dispatcher
from bot.commands.room import ROOM as ROOM_COMMANDS
from bot.config import Settings
from bot.rooms import SELF, Rooms
from bot.values import Change, Link, Place, Presence, Reply, Sender
from store import Store

SettingsFactory = Callable[..., Settings]  # the `settings` fixture

POOL = "conference.localhost"
OTHER = "chat.localhost"
ROOM = f"dev@{POOL}"
MISSING = f"typo@{POOL}"
URL = "https://stocks.example.org/panel"
URL2 = "https://stocks.example.org/v2"

ADMIN = Sender("admin@localhost")
STRANGER = Sender("mallory@localhost")
OWNER_DM = Sender("olivia@localhost")
MEMBER_DM = Sender("pat@localhost")
OWNER_IN_ROOM = Sender("olivia@localhost", ROOM, "olivia")
MEMBER_IN_ROOM = Sender("pat@localhost", ROOM, "pat")

REGISTER_USAGE = "Usage: register <name> <url> [pool <pool>]"
ADMIN_COMMANDS = (
    "help, register, update, unregister, list, show, audit, attach, detach, join, leave, rooms, "
    "managers, mute, unmute"
)
ANYONE = ["help", "list", "mute", "unmute"]  # what anyone may run by direct message


@dataclass
class Bot:
    dispatcher: Dispatcher
    rooms: Rooms
    store: Store
    handed: list[Change]  # what the commands' operations handed over, in order

    async def reply(self, text: str, sender: Sender = ADMIN) -> Reply:
        place = Place.DIRECT if sender.room is None else Place.ROOM
        reply = await self.dispatcher.run(place, sender, text)
        assert reply is not None
        return reply

    async def say(self, text: str, sender: Sender = ADMIN) -> str:
        return (await self.reply(text, sender)).text

    def stored(self) -> list[str]:
        return [name for name, _url, _n in addins.list_addins(self.store, pool=POOL).items]


def room_with_owner_and_member(rooms: Rooms) -> None:
    """The bot is in ROOM, which shows real JIDs: olivia is its owner, pat a member."""
    rooms.joining(ROOM, "AddinBot")
    rooms.update(Presence(ROOM, "olivia", True, "owner", "moderator", "olivia@localhost"))
    rooms.update(Presence(ROOM, "pat", True, "member", "participant", "pat@localhost"))
    rooms.update(Presence(ROOM, "AddinBot", True, codes=frozenset({SELF})))


async def exists(room: str) -> bool | None:
    """Every room exists but MISSING."""
    return room != MISSING


def make_bot(store: Store, settings: SettingsFactory, **sections: object) -> Bot:
    rooms = Rooms()
    room_with_owner_and_member(rooms)
    commands = {Place.DIRECT: DIRECT, Place.ROOM: ROOM_COMMANDS}
    handed: list[Change] = []
    sections = {"rooms": {"autojoin": [ROOM]}, **sections}  # the bot serves ROOM, and is in it
    dispatcher = Dispatcher(
        settings(**sections), store, rooms, commands, changed=handed.extend, exists=exists
    )
    return Bot(dispatcher, rooms, store, handed)


@pytest.fixture
def bot(store: Store, settings: SettingsFactory) -> Bot:
    return make_bot(store, settings)


def names_in_help(text: str) -> list[str]:
    return [line.split()[0] for line in text.splitlines()]


# --- help and mistakes ---------------------------------------------------------------------


async def test_help_lists_only_what_the_sender_may_run(bot: Bot) -> None:
    admin = await bot.say("help")
    assert names_in_help(admin) == ADMIN_COMMANDS.split(", ")
    assert "register <name> <url> [pool <pool>] — registers a new add-in" in admin.splitlines()

    assert names_in_help(await bot.say("help", STRANGER)) == ANYONE
    assert names_in_help(await bot.say("", STRANGER)) == ANYONE  # a bare "!addin"
    owner = (await bot.say("help", OWNER_DM)).partition("\nIn your room")[0]  # and her room's
    assert names_in_help(owner) == [
        "help", "list", "attach", "detach", "managers", "mute", "unmute"
    ]


async def test_help_by_direct_message_counts_the_rooms_other_processes_serve(
    store: Store, settings: SettingsFactory
) -> None:
    """Several processes: this one does not see who is in a room another serves, so help
    asks the others (`elsewhere`) which rooms they serve that the sender manages, and
    lists what a manager may run, with those rooms. Only help asks; admins never."""
    far = f"far@{POOL}"
    asked: list[str] = []

    async def elsewhere(jid: str) -> dict[str, bool]:
        asked.append(jid)
        return {far: False} if jid == STRANGER.jid else {}

    bot = make_bot(store, settings)
    bot.dispatcher.elsewhere = elsewhere
    said = await bot.say("help", STRANGER)
    lines = said.split("\nIn your room", 1)
    assert names_in_help(lines[0]) == ["help", "list", "attach", "detach", "managers", "mute",
                                       "unmute"]
    assert lines[1].startswith(f" ({far}), type:")
    unknown = await bot.say("atach", STRANGER)  # a typo: the commands it lists count them too
    assert "attach" in unknown.split("Commands: ", 1)[1]
    assert asked == [STRANGER.jid, STRANGER.jid]

    await bot.say("help")  # an admin
    await bot.say("list", STRANGER)  # no help
    assert names_in_help(await bot.say("help", MEMBER_DM)) == ANYONE  # manages nothing
    assert asked == [STRANGER.jid, STRANGER.jid, MEMBER_DM.jid]


async def test_help_for_one_command_gives_its_usage(bot: Bot) -> None:
    assert await bot.say("help register") == (
        "Usage: register <name> <url> [pool <pool>] — registers a new add-in"
    )
    assert await bot.say("HELP Unregister") == (
        "Usage: unregister <name> [pool <pool>] [force] — removes an add-in "
        "(force: also from the rooms using it)"
    )
    assert await bot.say("help register", STRANGER) == (
        "No command “register” that you may run. Commands: help, list, mute, unmute."
    )


async def test_an_unknown_command_is_one_line_with_the_commands(bot: Bot) -> None:
    assert await bot.say("frobnicate now") == (
        f"Unknown command “frobnicate”. Commands: {ADMIN_COMMANDS}."
    )
    assert await bot.say("!addins list", STRANGER) == (
        "Unknown command “!addins”. Commands: help, list, mute, unmute."
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("register Stock", "Missing <url>."),
        ("register", "Missing <name>."),
        (f"register Stock {URL} extra", "Unexpected “extra”."),
        (f"register Stock {URL} pool", "“pool” needs a value."),
        (f"register Stock {URL} pool {POOL} pool {POOL}", "“pool” is given twice."),
    ],
)
async def test_wrong_arguments_give_the_reason_and_the_usage(
    bot: Bot, text: str, reason: str
) -> None:
    assert await bot.say(text) == f"{reason} {REGISTER_USAGE}"
    assert bot.stored() == []


async def test_unbalanced_quotes_are_refused(bot: Bot) -> None:
    assert await bot.say(f'register "Stock Ticker {URL}') == (
        "Unbalanced quotes: close every \" you open."
    )


async def test_a_stranger_may_not_register_and_nothing_is_stored(bot: Bot) -> None:
    assert await bot.say(f"register Stock {URL}", STRANGER) == (
        "Only an addinbot admin may run register."
    )
    assert await bot.say("show Stock", STRANGER) == "Only an addinbot admin may run show."
    assert bot.stored() == []
    assert addins.audit(bot.store) == []


async def test_a_room_nickname_that_looks_like_an_admin_is_not_one(bot: Bot) -> None:
    impostor = Sender(None, ROOM, "admin@localhost")
    assert await bot.say("attach Stock", impostor) == (
        f"Only the owners and admins of {ROOM} may do that."
    )


# --- the admin's commands ------------------------------------------------------------------


async def test_an_admin_manages_an_add_in_from_start_to_end(bot: Bot) -> None:
    assert await bot.say(f'register "Stock Ticker" {URL}') == (
        f"Registered “Stock Ticker” in {POOL}: {URL}"
    )
    assert await bot.say("list") == (
        f"Add-ins in {POOL} (1; page 1 of 1):\n• Stock Ticker — {URL} (0 rooms)"
    )

    shown = (await bot.say('show "stock ticker"')).splitlines()
    assert shown[:3] == ["“Stock Ticker”", f"URL: {URL}", f"Pool: {POOL}"]
    assert re.fullmatch(
        r"Registered by admin@localhost on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", shown[3]
    )
    assert shown[4] == "Rooms (0): none"

    assert await bot.say(f'update "Stock Ticker" url {URL2}') == (
        f"“Stock Ticker” now points to {URL2}"
    )
    assert await bot.say(f'attach {ROOM} "Stock Ticker"') == (
        f"{ROOM} now has the add-in “Stock Ticker”: {URL2}"
    )
    assert await bot.say(f'update "Stock Ticker" URL {URL}') == (
        f"“Stock Ticker” now points to {URL} — the 1 room using it is told"
    )
    assert await bot.say('update "Stock Ticker" name Ticker') == (
        "Renamed “Stock Ticker” to “Ticker”."
    )
    assert await bot.say("unregister Ticker") == (
        f"“Ticker” is used by 1 room: {ROOM}. "
        f"Detach it first, or add force to detach it from them."
    )
    assert await bot.say("unregister Ticker force") == (
        f"Unregistered “Ticker” and detached it from 1 room, which was told: {ROOM}."
    )
    assert await bot.say("list") == f"No add-ins are registered in {POOL}."

    audit = (await bot.say("audit")).splitlines()
    assert [line.split("  ", 2)[1] for line in audit] == ["admin@localhost (dm)"] * 7
    assert [line.split("  ", 2)[2] for line in audit] == [
        f"unregister “Ticker” in {POOL} — {URL}",
        f"detach “Ticker” from {ROOM} — {addins.FORCED_DETACH}",
        "rename “Ticker” in conference.localhost — was “Stock Ticker”",
        f"update-url “Stock Ticker” in {POOL} — {URL}",
        f"attach “Stock Ticker” in {ROOM} — {URL2}",
        f"update-url “Stock Ticker” in {POOL} — {URL2}",
        f"register “Stock Ticker” in {POOL} — {URL}",
    ]
    assert len((await bot.say("audit 2")).splitlines()) == 2


async def test_update_needs_url_or_name(bot: Bot) -> None:
    await bot.say(f"register Stock {URL}")
    assert await bot.say("update Stock colour red") == (
        "Say “url” or “name”, not “colour”. Usage: update <name> url <url> [pool <pool>] | "
        "update <name> name <new-name> [pool <pool>]"
    )


async def test_audit_counts_are_checked(bot: Bot) -> None:
    assert await bot.say("audit") == "No changes have been recorded yet."
    usage = " Usage: audit [<n>]"
    assert await bot.say("audit 0") == "Give a number from 1 to 200, not “0”." + usage
    assert await bot.say("audit lots") == "Give a number from 1 to 200, not “lots”." + usage
    page = " Usage: list [pool <pool>] [page <page>]"
    assert await bot.say("list page 0") == "Give a number from 1 to 1000000, not “0”." + page


async def test_a_refused_url_is_the_reason_and_nothing_is_stored(bot: Bot) -> None:
    assert await bot.say("register Evil javascript:alert(1)") == (
        "URL refused: only http and https are allowed."
    )
    assert bot.stored() == []


async def test_join_leave_and_rooms(bot: Bot) -> None:
    assert await bot.say("rooms") == "The bot serves no rooms."
    assert await bot.say(f"join {ROOM.upper()}") == (
        f"Joining {ROOM}; the bot will rejoin it after restarts."
    )
    assert await bot.say(f"join {ROOM}") == f"The bot already serves {ROOM}."
    # A room that does not exist is not joined (that would create it), nor remembered.
    assert await bot.say(f"join {MISSING}") == (
        f"There is no room {MISSING}: the bot joins only rooms that exist."
    )
    assert MISSING not in await bot.say("rooms")
    assert await bot.say("rooms") == f"• {ROOM}: no add-in"
    assert await bot.say(f"leave {ROOM}") == f"Leaving {ROOM}."
    assert await bot.say(f"leave {ROOM}") == f"The bot does not serve {ROOM}."


@pytest.mark.parametrize(
    ("room", "reason"),
    [
        ("dev@elsewhere.example", f"Room dev@elsewhere.example is not in a served pool ({POOL})."),
        ("dev", f"dev is not a room address (room@{POOL})."),
        (f"dev@{POOL}/nick", f"dev@{POOL}/nick is not a room address (room@{POOL})."),
        (f"{'r' * 1024}@{POOL}", "A room name may be at most 1023 bytes long."),
    ],
)
async def test_a_room_outside_the_served_pools_is_refused(
    bot: Bot, room: str, reason: str
) -> None:
    await bot.say(f"register Stock {URL}")
    assert await bot.say(f"attach {room} Stock") == f"{reason} Usage: attach <room> <name>"
    assert addins.list_rooms(bot.store) == []


# --- managers by direct message ------------------------------------------------------------


async def test_a_room_owner_may_attach_by_direct_message_a_member_may_not(bot: Bot) -> None:
    await bot.say(f"register Stock {URL}")

    assert await bot.say(f"attach {ROOM} Stock", MEMBER_DM) == (
        f"Only the owners and admins of {ROOM} may do that."
    )
    assert addins.room_info(bot.store, ROOM).addin is None

    assert await bot.say(f"attach {ROOM} Stock", OWNER_DM) == (
        f"{ROOM} now has the add-in “Stock”: {URL}"
    )
    assert await bot.say(f"detach {ROOM}", OWNER_DM) == f"{ROOM} no longer has the add-in “Stock”."
    assert [(e.actor, e.via, e.action) for e in addins.audit(bot.store, limit=2)] == [
        ("olivia@localhost", "dm", "detach"), ("olivia@localhost", "dm", "attach"),
    ]


async def test_a_manager_of_one_room_does_not_manage_another(bot: Bot) -> None:
    await bot.say(f"register Stock {URL}")
    assert await bot.say(f"attach ops@{POOL} Stock", OWNER_DM) == (
        f"The bot is not in ops@{POOL}, so it cannot see who manages it."
    )


# --- in the room ---------------------------------------------------------------------------


async def test_show_in_the_room_says_the_add_in_to_everyone(bot: Bot) -> None:
    assert await bot.reply("", MEMBER_IN_ROOM) == Reply("This room has no add-in.", public=True)

    await bot.say(f'register "Stock Ticker" {URL}')
    await bot.say(f'attach {ROOM} "Stock Ticker"')

    sentence = f"This room's add-in is “Stock Ticker”: {URL}"
    expected = Reply(sentence, public=True, link=Link(URL, "Stock Ticker"))
    assert await bot.reply("", MEMBER_IN_ROOM) == expected
    assert await bot.reply("show", MEMBER_IN_ROOM) == expected


async def test_room_help_lists_the_room_commands_the_sender_may_run(bot: Bot) -> None:
    assert (await bot.say("help", MEMBER_IN_ROOM)).splitlines() == [
        "!addin show — says this room's add-in and its URL",
        "!addin list [page <page>] — the add-ins of this room's pool",
        "!addin help [<command>] — the room commands you may run",
        "!addin mute — you are not sent the add-in's link when you join this room",
        "!addin unmute — you are sent the add-in's link again when you join this room",
    ]
    assert names_in_help(await bot.say("help", OWNER_IN_ROOM)) == ["!addin"] * 10
    owner_help = await bot.say("help", OWNER_IN_ROOM)
    assert "!addin attach <name>" in owner_help
    assert "!addin leave — the bot says goodbye, leaves this room and forgets it" in owner_help
    assert await bot.say("frob", MEMBER_IN_ROOM) == (
        "Unknown command “frob”. Commands: show, list, help, mute, unmute."
    )


async def test_room_list_shows_the_rooms_pool(bot: Bot) -> None:
    await bot.say(f"register Stock {URL}")
    assert await bot.say("list", MEMBER_IN_ROOM) == (
        f"Add-ins in {POOL} (1; page 1 of 1):\n• Stock — {URL} (0 rooms)"
    )


async def test_a_member_may_not_attach_in_the_room(bot: Bot) -> None:
    await bot.say(f"register Stock {URL}")
    assert await bot.say("attach Stock", MEMBER_IN_ROOM) == (
        f"Only the owners and admins of {ROOM} may do that."
    )
    assert await bot.say("detach", MEMBER_IN_ROOM) == (
        f"Only the owners and admins of {ROOM} may do that."
    )
    assert addins.room_info(bot.store, ROOM).addin is None


async def test_an_owner_attaches_and_detaches_in_the_room(bot: Bot) -> None:
    await bot.say(f"register Stock {URL}")

    assert await bot.dispatcher.run(Place.ROOM, OWNER_IN_ROOM, "attach stock") is None

    assert addins.room_info(bot.store, ROOM).addin == "Stock"
    [row] = addins.audit(bot.store, limit=1)
    assert (row.actor, row.via, row.action, row.room) == (
        "olivia@localhost", "room", "attach", ROOM,
    )

    assert await bot.dispatcher.run(Place.ROOM, OWNER_IN_ROOM, "detach") is None
    assert addins.room_info(bot.store, ROOM).addin is None
    assert await bot.say("detach", OWNER_IN_ROOM) == f"{ROOM} has no add-in."


async def test_an_owner_in_a_semi_anonymous_room_is_recorded_by_nick(bot: Bot) -> None:
    await bot.say(f"register Stock {URL}")
    olivia = Sender(None, ROOM, "olivia")
    assert await bot.dispatcher.run(Place.ROOM, olivia, "attach Stock") is None
    assert addins.audit(bot.store, limit=1)[0].actor == f"{ROOM}/olivia"


async def test_attaching_an_unknown_add_in_in_the_room_is_refused(bot: Bot) -> None:
    assert await bot.say("attach Nope", OWNER_IN_ROOM) == f"No add-in named “Nope” in {POOL}."


# --- failures that are ours ----------------------------------------------------------------


async def test_an_unexpected_error_gives_a_reference_and_logs_the_traceback(
    bot: Bot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(addins, "list_addins", broken)

    with caplog.at_level(logging.ERROR, logger="bot.commands.registry"):
        text = await bot.say("list", STRANGER)

    found = re.fullmatch(
        r"Sorry, something went wrong \(ref: ([0-9a-f]{8})\)\. The operator's log has it\.", text
    )
    assert found is not None
    [record] = [r for r in caplog.records if r.name == "bot.commands.registry"]
    assert f"ref {found.group(1)}" in record.getMessage()
    assert record.exc_info is not None
    assert "the disk is on fire" in caplog.text
    assert "Traceback" in caplog.text
    # and the bot keeps answering
    assert names_in_help(await bot.say("help", STRANGER)) == ANYONE


# --- several pools -------------------------------------------------------------------------


async def test_with_several_pools_the_pool_must_be_named(
    store: Store, settings: SettingsFactory
) -> None:
    bot = make_bot(store, settings, pools={"names": [POOL, OTHER]})

    assert await bot.say(f"register Stock {URL}") == (
        f"Name the pool (pool <pool>): this bot serves {POOL}, {OTHER}."
    )
    assert await bot.say("list") == (  # every pool's, grouped by pool
        f"No add-ins are registered in {POOL}.\nNo add-ins are registered in {OTHER}."
    )
    assert await bot.say(f"register Stock {URL} pool nope.localhost") == (
        f"Pool nope.localhost is not served here; served: {POOL}, {OTHER}."
    )
    assert addins.audit(store) == []

    assert await bot.say(f"register Stock {URL} pool {OTHER}") == (
        f"Registered “Stock” in {OTHER}: {URL}"
    )
    assert await bot.say(f"register stock {URL2} POOL {POOL.upper()}") == (
        f"Registered “stock” in {POOL}: {URL2}"
    )
    assert await bot.say(f"list pool {OTHER}") == (
        f"Add-ins in {OTHER} (1; page 1 of 1):\n• Stock — {URL} (0 rooms)"
    )
    # in a room, the pool is the room's own
    assert await bot.say("list", MEMBER_IN_ROOM) == (
        f"Add-ins in {POOL} (1; page 1 of 1):\n• stock — {URL2} (0 rooms)"
    )
