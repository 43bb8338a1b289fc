"""Rate limits on a real server: a flood earns one notice, and delays nobody else."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bot.config import load_settings
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import sent_by
from tests.integration.conftest import BotHandle, jid, write_config

pytestmark = pytest.mark.xmpp


async def test_a_flooding_sender_is_told_once_and_others_are_served(
    prosody: Prosody, tmp_path: Path, people
) -> None:
    settings = load_settings(write_config(prosody, tmp_path, sender_limit="5", window_s="3"))
    handle = BotHandle(settings)
    await handle.start()
    try:
        mallory, admin = await people("mallory"), await people("admin")
        to = jid(prosody, "addinbot")
        for _ in range(40):
            mallory.send_chat(to, "list")
        # Five answers and one notice, however slowly they come today; whether a seventh
        # came is asked below, not read off a quiet spell.
        answers = [
            str((await mallory.wait_for(sent_by(to), timeout=10))["body"]) for _ in range(6)
        ]
        notices = [a for a in answers if a.startswith("Too many commands")]
        assert len(answers) == 6, answers
        assert len(notices) == 1
        assert [a for a in answers if a not in notices] == [
            f"No add-ins are registered in {prosody.muc}."
        ] * 5

        started = time.monotonic()
        reply = await admin.ask(to, "list", timeout=2.0)
        assert reply.startswith("No add-ins")
        assert time.monotonic() - started < 1.0

        await asyncio.sleep(3.1)  # the window passes: mallory is heard again
        # One sender is answered in order: nothing before this answer means nothing more
        # of the forty got through.
        mallory.send_chat(to, "help")
        heard = await mallory.nothing_before(
            lambda m: sent_by(to)(m) and str(m["body"]).startswith("help"), sent_by(to)
        )
        assert "list" in heard["body"]
        assert (await mallory.ask(to, "list")).startswith("No add-ins")
    finally:
        await handle.stop()
