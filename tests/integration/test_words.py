"""Right answers in the words people read (issue 13), against a real Prosody with real
clients: who is answered where, what a joiner is told, what an admin learns from `attach`,
the rate limit's notice, and the words of the answers themselves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot import addins, cli
from bot.announce import attached_sentence
from bot.config import load_settings
from bot.values import Actor
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import MessagePredicate, sent_by
from tests.integration.conftest import BotHandle, create_room, jid, write_config
from tests.integration.test_adhoc import make_non_anonymous
from tests.integration.test_rooms import (
    NAME,
    NICK,
    OTHER,
    OTHER_URL,
    URL,
    People,
    Scene,
    said_in_room,
)

pytestmark = pytest.mark.xmpp


@pytest.fixture
def scene(bot: BotHandle, people: People, prosody: Prosody) -> Scene:
    return Scene(bot, people, prosody)


def private_from_bot(room: str, body: str | None = None) -> MessagePredicate:
    return sent_by(f"{room}/{NICK}", "chat", body)


def in_room_from_bot(room: str) -> MessagePredicate:
    return sent_by(f"{room}/{NICK}", "groupchat")


async def test_a_question_asked_privately_through_the_room_is_answered_privately(
    scene: Scene, room: str
) -> None:
    await scene.register()
    alice, bob = await scene.occupy(room, "alice", "bob")
    alice.send_groupchat(room, f'!addin attach "{NAME}"')
    for client in (alice, bob):
        assert (await said_in_room(client, room))["body"] == attached_sentence(NAME, URL)

    for asked in ("show", "!addin show", "SHOW", "!addin"):
        bob.send_chat(f"{room}/{NICK}", asked)
        answer = await bob.wait_for(private_from_bot(room))
        assert answer["body"] == f"This room's add-in is “{NAME}”: {URL}", asked
        assert answer["oob"]["url"] == URL
    # Nothing of it was said in the room: alice's own question, answered (privately) after
    # bob's were, is the barrier.
    alice.send_groupchat(room, "!addin list")
    await alice.nothing_before(private_from_bot(room), in_room_from_bot(room))


async def test_a_joiner_is_welcomed_not_told_of_a_change(
    scene: Scene, room: str, people: People
) -> None:
    await scene.register()
    (alice,) = await scene.occupy(room, "alice")
    alice.send_groupchat(room, f'!addin attach "{NAME}"')
    assert (await said_in_room(alice, room))["body"] == attached_sentence(NAME, URL)

    bob = await people("bob")
    await bob.join_room(room, "bob")
    told = await bob.wait_for(private_from_bot(room))
    assert told["body"] == f"This room's add-in is “{NAME}”: {URL}"
    assert told["oob"]["url"] == URL


def not_served(room: str) -> str:
    return (
        f"{room} now has the add-in “{NAME}”: {URL}. The bot is not in {room}, so nobody "
        f"there is told; send the bot `join {room}` to serve the room."
    )


async def test_attach_to_a_room_the_bot_is_not_in_says_so_and_how_to_fix_it(
    scene: Scene, room: str, prosody: Prosody
) -> None:
    await scene.register()
    assert await scene.admin(f'attach {room} "{NAME}"') == not_served(room)
    # Still attached (remembered): once the bot serves the room, the answer is plain. (The
    # bot joins only a room that exists.)
    await create_room(prosody, room)
    assert (await scene.admin(f"join {room}")).startswith(f"Joining {room}")
    await scene.handle.in_room(room)
    await scene.register(OTHER, OTHER_URL)
    assert await scene.admin(f'attach {room} "{OTHER}"') == (
        f"{room} now has the add-in “{OTHER}”: {OTHER_URL}"
    )


def test_attach_on_the_command_line_to_a_room_the_bot_is_not_in_says_so(
    prosody: Prosody, tmp_path: Path, room: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(prosody, tmp_path))
    assert cli.main(["addin", "register", NAME, URL, "--config", config]) == 0
    capsys.readouterr()
    assert cli.main(["room", "attach", room, NAME, "--config", config]) == 0
    assert capsys.readouterr().out.strip() == not_served(room)


async def test_an_admin_pasting_many_commands_is_not_silenced_a_stranger_is_told_the_truth(
    prosody: Prosody, tmp_path: Path, people: People
) -> None:
    settings = load_settings(write_config(prosody, tmp_path, sender_limit="3", window_s="30"))
    handle = BotHandle(settings)
    await handle.start()
    try:
        admin, mallory = await people("admin"), await people("mallory")
        to = jid(prosody, "addinbot")
        for number in range(13):
            admin.send_chat(to, f"register Tool{number} https://t{number}.example.org/")
        for number in range(13):
            said = await admin.wait_for(sent_by(to), timeout=10)
            assert said["body"] == (
                f"Registered “Tool{number}” in {prosody.muc}: https://t{number}.example.org/"
            )
        for _ in range(5):
            mallory.send_chat(to, "help")
        answers = [str((await mallory.wait_for(sent_by(to)))["body"]) for _ in range(4)]
        notices = [a for a in answers if a.startswith("Too many")]
        assert len(notices) == 1, answers  # said at once: it may come before the answers
        helps = [a for a in answers if a not in notices]
        assert [a.partition(" — ")[0] for a in helps] == ["help [<command>]"] * 3, helps
        assert re.fullmatch(
            r"Too many commands from you: at most 3 every 30 s\. This one was not run, nor "
            r"will any sent in the next (29|30) s be; the bot says nothing more until then\.",
            notices[0],
        ), notices[0]
    finally:
        await handle.stop()


async def test_a_long_answer_stays_within_the_budget_with_and_n_more(
    scene: Scene, bot: BotHandle, prosody: Prosody
) -> None:
    assert bot.service is not None
    store = bot.service.store
    for number in range(20):  # one page of long URLs: ~40,000 characters
        url = f"https://t{number}.example.org/{'x' * 1900}"
        addins.register(store, Actor("ops", "cli"), pool=prosody.muc, name=f"T{number}", url=url)
    said = await scene.admin("list")
    budget = bot.settings.limits.reply_chars
    assert len(said) <= budget, len(said)
    head, *items, last = said.split("\n")
    assert head == f"Add-ins in {prosody.muc} (20; page 1 of 1):"
    assert len(items) == 8, len(items)  # whole lines only
    assert last == "… and 12 more lines."


async def test_a_managers_help_by_direct_message_points_to_her_room_commands(
    scene: Scene, room: str, people: People
) -> None:
    alice = await people("alice")
    await alice.join_room(room, "alice")  # she made the room: its owner
    await make_non_anonymous(alice, room)  # so the bot sees her real JID
    assert (await scene.admin(f"join {room}")).startswith(f"Joining {room}")
    await scene.handle.in_room(room)

    lines = (await alice.ask(scene.bot_jid, "help")).splitlines()
    assert [line.split()[0] for line in lines[:7]] == [
        "help", "list", "attach", "detach", "managers", "mute", "unmute"
    ]
    assert lines[7:] == [
        f"In your room ({room}), type:",
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
    bob = await people("bob")  # manages nothing: told of no room
    assert "In your" not in await bob.ask(scene.bot_jid, "help")


async def test_the_bot_is_addressed_by_its_nickname_whatever_its_case(
    scene: Scene, room: str
) -> None:
    await scene.register()
    (alice,) = await scene.occupy(room, "alice")
    alice.send_groupchat(room, f'{NICK.lower()}, attach "{NAME}"')
    assert (await said_in_room(alice, room))["body"] == attached_sentence(NAME, URL)
    alice.send_groupchat(room, f"{NICK.upper()}: show")
    said = await alice.wait_for(in_room_from_bot(room))
    assert said["body"] == f"This room's add-in is “{NAME}”: {URL}"
