"""Several processes: a direct message handed from one process to another (bot.xmpp.stanzas
`relayed`) is taken only from the bot's own account, another of its resources, as a live
headline; anything else that carries the hand-over element is no command at all."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from bot.values import Kind
from bot.xmpp.stanzas import relay_element, relayed

OWN = "addinbot@localhost/addinbot-aaaa"


def hand_over(sender: str, *, kind: str = "headline", person: str = "carol@localhost",
              text: str = "attach r@conference.localhost Stocks", delayed: bool = False,
              lang: str | None = "de") -> ET.Element:
    xml = ET.Element("{jabber:client}message", {"from": sender, "to": OWN, "type": kind})
    xml.append(relay_element(person, text, lang))
    if delayed:
        ET.SubElement(xml, "{urn:xmpp:delay}delay", {"stamp": "2026-11-30T00:00:00Z"})
    return xml


def test_a_hand_over_from_another_process_of_the_bot_is_a_direct_message_from_the_person(
) -> None:
    message = relayed(hand_over("addinbot@localhost/addinbot-bbbb"), own_full=OWN)
    assert message is not None
    assert (message.kind, message.jid, message.body, message.lang, message.relayed) == (
        Kind.DIRECT, "carol@localhost", "attach r@conference.localhost Stocks", "de", True
    )


@pytest.mark.parametrize(("xml", "why"), [
    (hand_over("mallory@localhost/phone"), "another account"),
    (hand_over("addinbot@elsewhere.example/addinbot-bbbb"), "another server's account"),
    (hand_over(OWN), "this very process"),
    (hand_over("addinbot@localhost"), "the bare JID: no process"),
    (hand_over("addinbot@localhost/addinbot-bbbb", kind="chat"), "not a headline"),
    (hand_over("addinbot@localhost/addinbot-bbbb", delayed=True), "delayed (stored, replayed)"),
    (hand_over("addinbot@localhost/addinbot-bbbb", person="localhost"), "no person"),
    (hand_over("addinbot@localhost/addinbot-bbbb", person="addinbot@localhost/x"),
     "the bot itself"),
    (hand_over("addinbot@localhost/addinbot-bbbb", text="  "), "nothing said"),
])
def test_anything_else_carrying_a_hand_over_is_not_taken(xml: ET.Element, why: str) -> None:
    assert relayed(xml, own_full=OWN) is None, why
