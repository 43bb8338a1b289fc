"""Subjects as the edge reads them (bot.xmpp.stanzas): a change, the subject sent on joining
(delayed: learnt only), and what is no subject at all; whether a room lets occupants change
it, from its disco#info, under each name servers use."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from bot.values import Subject
from bot.xmpp import stanzas

ROOM = "dev@conference.localhost"


def message(inner: str, **attrs: str) -> ET.Element:
    attributes = " ".join(f'{k.replace("_", "")}="{v}"' for k, v in attrs.items())
    text = f"<message xmlns='jabber:client' {attributes}>{inner}</message>"
    return ET.fromstring(text)  # noqa: S314 - the test's own text


def test_a_subject_change_and_the_subject_sent_on_joining() -> None:
    change = message("<subject>Weekly</subject>", type="groupchat", from_=f"{ROOM}/alice")
    assert stanzas.to_subject(change) == Subject(ROOM, "alice", "Weekly", False)
    joined = message(
        "<subject>Weekly</subject><delay xmlns='urn:xmpp:delay' stamp='2026-01-01T00:00:00Z'/>",
        type="groupchat", from_=ROOM,
    )
    assert stanzas.to_subject(joined) == Subject(ROOM, None, "Weekly", True)
    cleared = message("<subject/>", type="groupchat", from_=f"{ROOM}/alice")
    assert stanzas.to_subject(cleared) == Subject(ROOM, "alice", "", False)


@pytest.mark.parametrize("xml", [
    message("<subject>x</subject><body>hi</body>", type="groupchat", from_=f"{ROOM}/a"),
    message("<subject>x</subject>", type="chat", from_=f"{ROOM}/a"),
    message("<subject>x</subject>", type="error", from_=f"{ROOM}/a"),
    message("<body>hi</body>", type="groupchat", from_=f"{ROOM}/a"),
    message("<subject>x</subject><received xmlns='urn:xmpp:carbons:2'/>", type="groupchat",
            from_=f"{ROOM}/a"),
])
def test_what_is_no_subject(xml: ET.Element) -> None:
    assert stanzas.to_subject(xml) is None


def disco(fields: str) -> ET.Element:
    text = (
        "<iq xmlns='jabber:client' type='result'>"
        "<query xmlns='http://jabber.org/protocol/disco#info'>"
        f"<x xmlns='jabber:x:data' type='result'>{fields}</x></query></iq>"
    )
    return ET.fromstring(text)  # noqa: S314 - the test's own text


@pytest.mark.parametrize(("fields", "open_"), [
    ("<field var='muc#roomconfig_changesubject'><value>1</value></field>", True),  # Prosody
    ("<field var='muc#roomconfig_changesubject' type='boolean'/>", False),  # Prosody, unset
    ("<field var='muc#roominfo_changesubject'><value>true</value></field>", True),  # ejabberd
    ("<field var='muc#roominfo_subjectmod'><value>0</value></field>", False),  # XEP-0045
    ("<field var='muc#roominfo_occupants'><value>3</value></field>", None),
])
def test_whether_occupants_may_change_the_subject(fields: str, open_: bool | None) -> None:
    assert stanzas.subject_open(disco(fields)) is open_
