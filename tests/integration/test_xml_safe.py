"""Text no XML stream can carry, against a real Prosody (issue 12, finding 5).

A control character in a stored value (from an older version, or another process writing
to the database) must not reach the wire: the server would close the bot's stream on the
first stanza holding it, and every later answer showing that row would do it again.
"""

from __future__ import annotations

import pytest
from sqlmodel import Session

from store.models import AuditEvent
from tests.harness.prosody import Prosody
from tests.integration.conftest import BotHandle, jid

pytestmark = pytest.mark.xmpp


async def test_a_control_character_in_the_store_is_sent_as_a_replacement_character(
    bot: BotHandle, people, prosody: Prosody
) -> None:
    assert bot.service is not None
    with Session(bot.service.store.engine) as session:  # what the CLI once let in
        session.add(AuditEvent(actor="root\x01\x1b[2J", via="cli", action="register",
                               detail="line\u2028two\x7f"))
        session.commit()
    admin = await people("admin")
    to = jid(prosody, "addinbot")
    edge = bot.service.edge
    for _ in range(2):  # the second asks over the same stream: the server kept it open
        reply = await admin.ask(to, "audit 1", timeout=5)
        assert "root\ufffd\ufffd[2J (cli)" in reply
        assert "line\ufffdtwo\ufffd" in reply  # one audit line, even for a U+2028
        assert not {"\x01", "\x1b", "\u2028", "\x7f"} & set(reply)
    assert (await admin.ask(to, "help audit")).startswith("Usage: audit")
    assert edge.online.is_set()
