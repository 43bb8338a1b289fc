"""Answers kept until the store changes: `list` and `!addin` answered on the loop, and never
from before a change once that change is known."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from bot import addins
from bot.commands.answers import MOST_KEPT, MOST_KEPT_CHARS, Answers
from bot.commands.registry import CommandSet, Dispatcher, Request
from bot.metrics import METRICS
from bot.rooms import Rooms
from bot.values import Place, Reply, Role
from store import Store
from tests.unit.test_dispatch import (
    ADMIN,
    MEMBER_IN_ROOM,
    OWNER_IN_ROOM,
    POOL,
    ROOM,
    STRANGER,
    URL,
    URL2,
    Bot,
    SettingsFactory,
    make_bot,
)


@pytest.fixture
def bot(store: Store, settings: SettingsFactory) -> Bot:
    return make_bot(store, settings)


def change_behind_the_bots_back(store: Store, url: str) -> None:
    """What another process's commit looks like to this one: the rows change, and no
    operation of this process hands over changes."""
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE addin SET url = :url"), {"url": url})


def no_database(monkeypatch: pytest.MonkeyPatch, store: Store) -> list[Any]:
    """From here on, any command that goes to a database thread is recorded."""
    calls: list[Any] = []

    async def refuse(call: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(call)
        raise AssertionError(f"went to the database: {call}")

    monkeypatch.setattr(store, "run", refuse)
    return calls


async def test_a_second_list_is_answered_without_the_database(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bot.say(f"register Stock {URL}")
    first = await bot.say("list")
    calls = no_database(monkeypatch, bot.store)
    assert await bot.say("list") == first
    assert await bot.say("LIST") == first  # the same command, however it is spelled
    assert calls == []


async def test_the_rooms_add_in_is_answered_without_the_database(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    await bot.say(f"register Stock {URL}")
    await bot.say(f"attach {ROOM} Stock")
    first = await bot.reply("", MEMBER_IN_ROOM)
    calls = no_database(monkeypatch, bot.store)
    assert await bot.reply("", OWNER_IN_ROOM) == first  # kept for the room, not the person
    assert await bot.reply("show", MEMBER_IN_ROOM) == first
    assert calls == []
    assert first.text == f"This room's add-in is “Stock”: {URL}"


async def test_this_processs_own_change_is_seen_at_once(bot: Bot) -> None:
    await bot.say(f"register Stock {URL}")
    await bot.say(f"attach {ROOM} Stock")
    assert "(1 room)" in await bot.say("list")
    assert await bot.say("", MEMBER_IN_ROOM) == f"This room's add-in is “Stock”: {URL}"
    await bot.say(f"update Stock url {URL2}")
    assert URL2 in await bot.say("list")
    assert await bot.say("", MEMBER_IN_ROOM) == f"This room's add-in is “Stock”: {URL2}"
    await bot.say(f"detach {ROOM}")
    assert "(0 rooms)" in await bot.say("list")
    assert await bot.say("", MEMBER_IN_ROOM) == "This room has no add-in."


async def test_a_change_made_elsewhere_shows_once_the_follower_finds_it(bot: Bot) -> None:
    await bot.say(f"register Stock {URL}")
    assert URL in await bot.say("list")
    change_behind_the_bots_back(bot.store, URL2)
    # Until the audit log is read, the kept answer stands (that is what keeping is) ...
    assert URL in await bot.say("list")
    bot.dispatcher.answers.changed()
    # ... and once it is, no answer from before the change is given again.
    assert URL2 in await bot.say("list")


async def test_refusals_are_not_kept(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    await bot.say(f"register Stock {URL}")
    went: list[Any] = []
    run = bot.store.run

    async def counting(call: Any, *args: Any, **kwargs: Any) -> Any:
        went.append(call)
        return await run(call, *args, **kwargs)

    monkeypatch.setattr(bot.store, "run", counting)
    for _ in range(2):
        assert await bot.say("list page 2") == "There is only 1 page."
    assert len(went) == 2  # each time from the store


async def test_the_role_check_comes_before_any_kept_answer(
    store: Store, settings: SettingsFactory
) -> None:
    """A kept answer is an answer to the words, not a pass: each sender is checked. (The
    bot's own kept commands are open to anyone; this one, for the test, is not.)"""
    secrets = CommandSet(Place.DIRECT)

    @secrets.command("secret", "an answer for admins only", role=Role.ADMIN, kept=True)
    def secret(request: Request) -> Reply:
        return Reply("the secret")

    dispatcher = Dispatcher(settings(), store, Rooms(), {Place.DIRECT: secrets},
                            changed=lambda changes: None)
    assert await dispatcher.run(Place.DIRECT, ADMIN, "secret") == Reply("the secret")
    assert dispatcher.kept(Place.DIRECT, ADMIN, "secret") == Reply("the secret")
    assert dispatcher.kept(Place.DIRECT, STRANGER, "secret") is None
    refused = await dispatcher.run(Place.DIRECT, STRANGER, "secret")
    assert refused == Reply("Only an addinbot admin may run secret.")


def test_an_answer_read_before_a_change_is_not_kept() -> None:
    answers: Answers[str] = Answers(size=len)
    read_at = answers.version()
    answers.changed()  # a change came back while the answer was being read
    answers.keep("list", "read before the change", read_at=read_at)
    assert answers.get("list") is None
    read_at = answers.version()
    answers.keep("list", "read after it", read_at=read_at)
    assert answers.get("list") == "read after it"
    answers.changed()
    assert answers.get("list") is None


async def test_a_commands_changes_drop_the_kept_answers_before_it_is_answered(bot: Bot) -> None:
    assert (await bot.say("list")).startswith("No add-ins")
    assert bot.dispatcher.kept(Place.DIRECT, ADMIN, "list") is not None
    await bot.say(f"register Stock {URL}")
    assert [c.entry.action for c in bot.handed] == ["register"]  # handed over, and ...
    assert bot.dispatcher.kept(Place.DIRECT, ADMIN, "list") is None  # ... the answer dropped
    assert "Stock" in await bot.say("list")


def test_the_notes_of_whom_the_bot_told_do_not_drop_answers(store: Store) -> None:
    addins.register(store, addins.Actor("admin@localhost", "dm"), pool=POOL, name="Stock",
                    url=URL)
    addins.attach(store, addins.Actor("admin@localhost", "dm"), room=ROOM, name="Stock")
    answers: Answers[str] = Answers(size=len)
    answers.keep("list", "kept", read_at=answers.version())
    told = addins.claim_announcements(store, room=ROOM, people=["pat@localhost"],
                                      cooldown_s=60)
    assert told.result[1] == ("pat@localhost",)
    assert told.changes == ()  # nothing to hand over: the version does not move
    assert answers.get("list") == "kept"


def test_at_most_so_many_answers_are_kept() -> None:
    answers: Answers[int] = Answers(size=lambda _: 1)
    for number in range(MOST_KEPT + 5):
        answers.keep(number, number, read_at=answers.version())
    assert len(answers) <= MOST_KEPT
    assert answers.get(MOST_KEPT + 4) == MOST_KEPT + 4


async def test_kept_gives_an_answer_only_once_one_is_kept(bot: Bot) -> None:
    await bot.say(f"register Stock {URL}")
    assert bot.dispatcher.kept(Place.DIRECT, ADMIN, "list") is None  # not read yet
    answer = await bot.reply("list")
    assert bot.dispatcher.kept(Place.DIRECT, ADMIN, "list") == answer
    assert bot.dispatcher.kept(Place.DIRECT, ADMIN, "list page 1") is None  # other words
    assert bot.dispatcher.kept(Place.DIRECT, ADMIN, "audit") is None  # never kept


def counted() -> list[tuple[str, dict[str, str], float]]:
    """Every sample of the bot's counters."""
    return [(sample.name, sample.labels, sample.value)
            for family in METRICS.collect() for sample in family.samples]


async def test_kept_leaves_refusals_to_run_and_counts_nothing(bot: Bot) -> None:
    await bot.say(f"register Stock {URL}")
    await bot.say("list")
    assert len(bot.dispatcher.answers) == 1  # something is kept: kept() looks closer
    before = counted()
    assert bot.dispatcher.kept(Place.DIRECT, STRANGER, "register X https://x.example.org/") is None
    assert bot.dispatcher.kept(Place.DIRECT, ADMIN, "list page x") is None
    assert bot.dispatcher.kept(Place.ROOM, MEMBER_IN_ROOM, "attach Stock") is None
    assert counted() == before


def test_at_most_so_many_characters_are_kept() -> None:
    answers: Answers[str] = Answers(size=len)
    page = "x" * 40_000  # a list page of long URLs
    for number in range(MOST_KEPT_CHARS // len(page) + 3):
        answers.keep(number, page, read_at=answers.version())
        assert len(answers) * len(page) <= MOST_KEPT_CHARS
    assert answers.get(MOST_KEPT_CHARS // len(page) + 2) == page
