"""The command line beside a running bot, over real sockets: an import made at a shell is
announced by the running bot like any other change made there — once, in the rooms using
an add-in whose URL it changed — and what the bot answers afterwards includes it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from slixmpp import Message

from bot import cli
from bot.commands.text import attached_sentence, welcome_sentence
from tests.harness.prosody import Prosody
from tests.integration.conftest import BotHandle
from tests.integration.test_rooms import NAME, NICK, URL, People, Scene

pytestmark = pytest.mark.xmpp

NEW_URL = "https://wiki2.example.org/panel"


@pytest.fixture
def scene(bot: BotHandle, people: People, prosody: Prosody) -> Scene:
    return Scene(bot, people, prosody)


async def test_an_import_at_a_shell_is_announced_once_by_the_running_bot(
    scene: Scene, prosody: Prosody, tmp_path: Path, room: str
) -> None:
    await scene.register()
    (alice,) = await scene.occupy(room, "alice")
    alice.send_groupchat(room, f'!addin attach "{NAME}"')
    said = await alice.wait_for(lambda m: m["body"] == attached_sentence(NAME, URL))
    assert said["from"].full == f"{room}/{NICK}"

    source = tmp_path / "addins.csv"
    source.write_text(f"name,url\n{NAME},{NEW_URL}\nFresh,https://fresh.example.org/\n",
                      encoding="utf-8")
    config = str(tmp_path / "addinbot.toml")  # the running bot's own (bot_settings)
    status = await asyncio.to_thread(cli.main, ["addin", "import", str(source), "--config",
                                                config])
    assert status == 0

    def from_bot(msg: Message) -> bool:
        return msg["from"].full == f"{room}/{NICK}"

    told = await alice.wait_for(
        lambda m: from_bot(m) and m["body"] == attached_sentence(NAME, NEW_URL), timeout=10
    )
    assert told["type"] == "groupchat"
    assert told["oob"]["url"] == NEW_URL
    # Once: alice's question, answered after the announcement, is the barrier.
    alice.send_groupchat(room, "!addin")
    await alice.nothing_before(
        lambda m: from_bot(m) and m["body"] == welcome_sentence(NAME, NEW_URL),
        lambda m: from_bot(m) and m["body"] == attached_sentence(NAME, NEW_URL),
    )
    listed = await scene.admin("list")
    assert "Fresh — https://fresh.example.org/" in listed
    assert f"{NAME} — {NEW_URL}" in listed
