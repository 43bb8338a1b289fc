"""The words of the answers (issue 13): plurals, the stored name echoed, suggestions for a
mistyped command or add-in, every pool's add-ins at once, and the usage with wrong words."""

from __future__ import annotations

import pytest

from bot.wording import did_you_mean, plural, some_of
from store import Store
from tests.unit.test_dispatch import (
    MEMBER_DM,
    OTHER,
    OWNER_DM,
    OWNER_IN_ROOM,
    POOL,
    ROOM,
    URL,
    URL2,
    Bot,
    SettingsFactory,
    make_bot,
)

ROOM_B = f"ops@{POOL}"


@pytest.fixture
def bot(store: Store, settings: SettingsFactory) -> Bot:
    return make_bot(store, settings, rooms={"autojoin": [ROOM, ROOM_B]})


def test_plurals_and_lists_cut_with_and_n_more() -> None:
    assert [plural(n, "room") for n in (0, 1, 2)] == ["0 rooms", "1 room", "2 rooms"]
    assert some_of(["a", "b"], 2) == "a, b"
    assert some_of(["a", "b", "c", "d"], 2) == "a, b and 2 more"
    assert did_you_mean("atach", ["attach", "detach"]) == " Did you mean “attach”?"
    assert did_you_mean("zzz", ["attach", "detach"]) == ""


async def test_counts_read_as_words(bot: Bot) -> None:
    await bot.say(f"register Stock {URL}")
    await bot.say(f"attach {ROOM} Stock")
    assert await bot.say(f"update Stock url {URL2}") == (
        f"“Stock” now points to {URL2} — the 1 room using it is told"
    )
    await bot.say(f"attach {ROOM_B} Stock")
    assert await bot.say(f"update Stock url {URL}") == (
        f"“Stock” now points to {URL} — the 2 rooms using it are told"
    )
    assert await bot.say("unregister Stock") == (
        f"“Stock” is used by 2 rooms: {ROOM}, {ROOM_B}. "
        "Detach it first, or add force to detach it from them."
    )
    assert await bot.say("unregister Stock force") == (
        f"Unregistered “Stock” and detached it from 2 rooms, which were told: {ROOM}, {ROOM_B}."
    )
    assert await bot.say("list page 2") == "There is only 1 page."


async def test_a_rename_echoes_the_name_as_stored(bot: Bot) -> None:
    await bot.say(f"register Weather {URL}")
    assert await bot.say("update weather name Forecast") == "Renamed “Weather” to “Forecast”."


async def test_a_mistyped_command_or_add_in_gets_the_nearest(bot: Bot) -> None:
    assert (await bot.say("atach")).startswith("Unknown command “atach”. Did you mean “attach”?")
    assert (await bot.say("help regster")).startswith(
        "No command “regster” that you may run. Did you mean “register”?"
    )
    await bot.say(f'register "Stock Ticker" {URL}')
    assert await bot.say('show "Stock Tikcer"') == (
        f"No add-in named “Stock Tikcer” in {POOL}. Did you mean “Stock Ticker”?"
    )
    assert await bot.say("show Zebra") == f"No add-in named “Zebra” in {POOL}."


async def test_list_without_a_pool_groups_every_served_pools_add_ins(
    store: Store, settings: SettingsFactory
) -> None:
    bot = make_bot(store, settings, pools={"names": [POOL, OTHER]})
    await bot.say(f"register Stock {URL} pool {POOL}")
    await bot.say(f"register Chat {URL2} pool {OTHER}")
    await bot.say(f"register Wiki {URL2} pool {OTHER}")
    assert await bot.say("list") == "\n".join([
        f"{POOL} (1 add-in):",
        f"• Stock — {URL} (0 rooms)",
        f"{OTHER} (2 add-ins):",
        f"• Chat — {URL2} (0 rooms)",
        f"• Wiki — {URL2} (0 rooms)",
    ])
    assert await bot.say("list page 2") == "There is only 1 page."
    assert (await bot.say(f"list pool {OTHER}")).startswith(f"Add-ins in {OTHER} (2; page 1")


async def test_a_room_command_by_direct_message_and_a_direct_one_in_a_room_say_where(
    bot: Bot,
) -> None:
    await bot.say(f"register Wiki {URL}")
    assert await bot.say("attach Wiki") == (
        "“Wiki” is not a room address; in a room, type `!addin attach Wiki`, or here "
        "`attach <room> <name>`."
    )
    assert await bot.say(f"register Wiki {URL}", OWNER_IN_ROOM) == (
        "register works only in a direct message to addinbot@localhost."
    )


async def test_a_managers_help_by_direct_message_points_to_her_room_commands(bot: Bot) -> None:
    """olivia owns ROOM (the room shows the bot real JIDs): by direct message, help lists
    what she may run there and where to type it."""
    assert (await bot.say("help", OWNER_DM)).splitlines() == [
        "help [<command>] — lists the commands you may run",
        "list [pool <pool>] [page <page>] — lists the add-ins, with their URLs and how many "
        "rooms use each",
        "attach <room> <name> — makes <name> the room's add-in (replaces any earlier one)",
        "detach <room> — removes the room's add-in",
        "managers <room> [add <jid>] [remove <jid>] — a room's named managers; its owners add "
        "or remove them",
        "mute [<room>|all] — you are not sent the add-in's link on joining a room (all: any "
        "room)",
        "unmute [<room>|all] — you are sent the add-in's link again on joining (all: any room)",
        f"In your room ({ROOM}), type:",
        "!addin show — says this room's add-in and its URL",
        "!addin list [page <page>] — the add-ins of this room's pool",
        "!addin attach <name> — makes <name> this room's add-in and tells the room",
        "!addin detach — removes this room's add-in and tells the room",
        "!addin help [<command>] — the room commands you may run",
        "!addin managers [add <jid>] [remove <jid>] — this room's named managers; an owner adds "
        "or removes one",
        "!addin pin on|off — keeps the add-in at the end of the room's subject (on), or not (off)",
        "!addin mute — you are not sent the add-in's link when you join this room",
        "!addin unmute — you are sent the add-in's link again when you join this room",
    ]
    # Neither a member nor an admin is told of rooms to type in; nor is help in a room.
    assert "In your" not in await bot.say("help", MEMBER_DM)
    assert "In your" not in await bot.say("help")
    assert "In your" not in await bot.say("help", OWNER_IN_ROOM)
