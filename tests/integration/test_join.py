"""Joining rooms: what the bot does when its nickname is taken."""

from __future__ import annotations

import pytest

from tests.harness.prosody import Prosody
from tests.integration.conftest import BotHandle, jid

pytestmark = pytest.mark.xmpp


async def test_a_squatted_nickname_makes_the_bot_take_the_next_one(
    bot: BotHandle, people, prosody: Prosody, room: str
) -> None:
    squatter = await people("mallory")
    await squatter.join_room(room, "AddinBot")
    admin = await people("admin")
    await admin.ask(jid(prosody, "addinbot"), f"join {room}")
    await bot.in_room(room)
    assert bot.service is not None
    assert bot.service.app.rooms.nick_in(room) == "AddinBot_"

    squatter.send_groupchat(room, "!addin")
    said = await squatter.next_message(
        predicate=lambda m: m["type"] == "groupchat" and m["from"].resource == "AddinBot_"
    )
    assert said["body"] == "This room has no add-in."
