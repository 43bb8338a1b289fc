"""Several processes: a direct message handed from one process to another (bot.xmpp.stanzas
`relayed`) is taken only from the bot's own account, another of its resources, as a live
headline; anything else that carries the hand-over element is no command at all."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from slixmpp import JID, Iq
from slixmpp.exceptions import XMPPError

from bot.values import Kind
from bot.xmpp.client import XmppEdge
from bot.xmpp.stanzas import (
    managed_answer,
    managed_answered,
    managed_asked,
    managed_query,
    relay_element,
    relayed,
)

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


# --- a form's question to the other processes: which rooms a person manages -------------


def managed_iq(sender: str, *, kind: str = "get", person: str = "carol@localhost") -> ET.Element:
    xml = ET.Element("{jabber:client}iq", {"from": sender, "to": OWN, "type": kind, "id": "q1"})
    xml.append(managed_query(person))
    return xml


def test_another_process_asking_which_rooms_a_person_manages_is_answered() -> None:
    asked = managed_iq("addinbot@localhost/addinbot-bbbb", person="Carol@LOCALHOST")
    assert managed_asked(asked, own_full=OWN) == "carol@localhost"


@pytest.mark.parametrize(("xml", "why"), [
    (managed_iq("mallory@localhost/phone"), "another account"),
    (managed_iq("addinbot@elsewhere.example/addinbot-bbbb"), "another server's account"),
    (managed_iq(OWN), "this very process"),
    (managed_iq("addinbot@localhost"), "the bare JID: no process"),
    (managed_iq("addinbot@localhost/addinbot-bbbb", kind="set"), "not a question"),
    (managed_iq("addinbot@localhost/addinbot-bbbb", kind="result"), "an answer"),
    (managed_iq("addinbot@localhost/addinbot-bbbb", person="localhost"), "no person"),
    (managed_iq("addinbot@localhost/addinbot-bbbb", person="carol@localhost/phone"),
     "a session, not a person"),
    (managed_iq("addinbot@localhost/addinbot-bbbb", person="addinbot@localhost"),
     "the bot itself"),
    (managed_iq("addinbot@localhost/addinbot-bbbb", person="carol@@localhost"), "no JID"),
])
def test_anyone_else_asking_which_rooms_a_person_manages_is_not_answered(
    xml: ET.Element, why: str
) -> None:
    assert managed_asked(xml, own_full=OWN) is None, why


def test_an_answer_reads_back_as_rooms_and_whether_owned() -> None:
    rooms = {"a@conference.localhost": True, "b@conference.localhost": False}
    answer = ET.Element("{jabber:client}iq", {"type": "result"})
    answer.append(managed_answer(rooms))
    assert managed_answered(answer) == rooms


def test_what_is_no_room_in_an_answer_is_left_out() -> None:
    answer = ET.Element("{jabber:client}iq", {"type": "result"})
    element = managed_answer({"a@conference.localhost": True})
    for odd in ("conference.localhost", "b@conference.localhost/nick", "c@@x", ""):
        ET.SubElement(element, element[0].tag, {"jid": odd, "owner": "true"})
    answer.append(element)
    assert managed_answered(answer) == {"a@conference.localhost": True}
    assert managed_answered(ET.Element("{jabber:client}iq")) == {}


def test_the_question_is_answered_only_when_asked_and_never_from_a_stranger(
    edge: XmppEdge,
) -> None:
    """A `get` from anyone but another process is refused (service-unavailable, raised for
    slixmpp to send); an answer or an error carrying the element (what comes back to this
    process's own question) gets no reply at all: a reply to an answer is an error loop."""
    def iq(kind: str, sender: str) -> Iq:
        stanza = Iq(edge, sfrom=JID(sender), sto=edge.boundjid, stype=kind)
        stanza.xml.append(managed_query("carol@localhost"))
        return stanza

    with pytest.raises(XMPPError) as refused:
        edge.adhoc._managed_asked(iq("get", "mallory@localhost/phone"))
    assert refused.value.condition == "service-unavailable"
    for kind in ("result", "error"):
        assert edge.adhoc._managed_asked(iq(kind, "addinbot@localhost/addinbot-bbbb")) is None
