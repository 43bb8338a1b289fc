"""The edge takes occupants' presences from its stream before slixmpp's handlers
(bot.xmpp.muc, an in-filter): the bot gets them, slixmpp's roster and MUC plugin do not, stream
management still counts them, and what is not an occupant's presence goes on as before."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest

from bot.values import Presence
from bot.xmpp.client import XmppEdge

ROOM = "room@conference.localhost"
MUC_USER = "http://jabber.org/protocol/muc#user"


class Recorder:
    """The few Bot calls a presence can lead to."""

    def __init__(self) -> None:
        self.presences: list[Presence] = []
        self.join_errors: list[tuple[str, str]] = []

    def own_nick(self, room: str) -> str | None:
        return "AddinBot" if room == ROOM else None

    def on_presence(self, presence: Presence) -> None:
        self.presences.append(presence)

    def on_join_error(self, room: str, condition: str) -> None:
        self.join_errors.append((room, condition))


@pytest.fixture
def edge(make_edge: Callable[[], XmppEdge]) -> XmppEdge:
    edge = make_edge()
    edge.bot = Recorder()  # type: ignore[assignment]
    return edge


def receive(edge: XmppEdge, text: str, loop: asyncio.AbstractEventLoop) -> None:
    """As if ``text`` had just been read from the stream (this file's own XML)."""

    async def arrive() -> None:
        edge._spawn_event(ET.fromstring(text))  # noqa: S314
        await asyncio.sleep(0)  # let slixmpp's queued event handlers run

    loop.run_until_complete(arrive())


def occupant(nick: str, *, kind: str | None = None, item: str = "role='participant'") -> str:
    kind_attr = f" type='{kind}'" if kind else ""
    return (
        f"<presence xmlns='jabber:client' from='{ROOM}/{nick}' to='addinbot@localhost/b'"
        f"{kind_attr}><x xmlns='{MUC_USER}'><item affiliation='member' {item} "
        f"jid='{nick}@localhost/phone'/></x>"
        "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v1'/></presence>"
    )


def slixmpp_events(edge: XmppEdge) -> list[str]:
    seen: list[str] = []
    for event in ("presence", "presence_available", "presence_unavailable", "presence_error",
                  "presence_subscribe", "groupchat_presence", "entity_caps"):
        edge.add_event_handler(event, lambda _stanza, event=event: seen.append(event))
    return seen


def test_an_occupants_presence_goes_to_the_bot_and_no_further(
    edge: XmppEdge, loop: asyncio.AbstractEventLoop
) -> None:
    seen = slixmpp_events(edge)
    management = edge.plugin["xep_0198"]
    management.enabled_in = True
    counted = management.handled

    receive(edge, occupant("alice"), loop)
    receive(edge, occupant("alice", kind="unavailable"), loop)

    recorder: Any = edge.bot
    assert [(p.room, p.nick, p.available, p.jid, p.role) for p in recorder.presences] == [
        (ROOM, "alice", True, "alice@localhost", "participant"),
        (ROOM, "alice", False, "alice@localhost", "participant"),
    ]
    assert seen == []  # no roster, caps or MUC-plugin work, no events
    assert ROOM not in edge.client_roster  # slixmpp kept nothing about the room
    assert management.handled == counted + 2  # each still counted for stream management
    assert ROOM in edge.liveness._heard  # the room is alive: no self-ping due


def test_an_error_presence_from_a_room_still_reaches_the_bot_as_a_join_error(
    edge: XmppEdge, loop: asyncio.AbstractEventLoop
) -> None:
    receive(edge, (
        f"<presence xmlns='jabber:client' from='{ROOM}/AddinBot' type='error'>"
        "<x xmlns='http://jabber.org/protocol/muc'/>"
        f"<x xmlns='{MUC_USER}'/>"
        "<error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
        "</presence>"
    ), loop)

    recorder: Any = edge.bot
    assert recorder.join_errors == [(ROOM, "conflict")]
    assert recorder.presences == []


def test_a_subscription_request_dressed_as_a_room_presence_is_left_to_slixmpp(
    edge: XmppEdge, loop: asyncio.AbstractEventLoop
) -> None:
    seen = slixmpp_events(edge)

    receive(edge, occupant("mallory", kind="subscribe"), loop)

    recorder: Any = edge.bot
    assert recorder.presences == []
    assert "presence_subscribe" in seen


def test_a_presence_that_names_no_occupant_is_left_to_slixmpp(
    edge: XmppEdge, loop: asyncio.AbstractEventLoop
) -> None:
    seen = slixmpp_events(edge)

    receive(edge, "<presence xmlns='jabber:client' from='carol@localhost/home'/>", loop)
    receive(edge, f"<presence xmlns='jabber:client' from='{ROOM}'><x xmlns='{MUC_USER}'/>"
                  "</presence>", loop)

    recorder: Any = edge.bot
    assert recorder.presences == []
    assert seen.count("presence") == 2  # (slixmpp's MUC plugin, which would also raise
    # groupchat_presence for the second, is not loaded: the bot's own plugin reads rooms)


def test_a_presence_the_edge_cannot_read_is_left_to_slixmpp_and_the_stream_lives_on(
    edge: XmppEdge, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception in an in-filter would leave slixmpp's data_received and end the stream."""
    seen = slixmpp_events(edge)

    def unreadable(_xml: ET.Element) -> Presence:
        raise ValueError("unreadable")

    monkeypatch.setattr(edge.muc, "to_presence", unreadable)
    receive(edge, occupant("alice"), loop)  # raises through here if the filter let it out

    recorder: Any = edge.bot
    assert recorder.presences == []
    assert "presence" in seen  # slixmpp had it, as it has any presence


def test_a_bot_failing_on_a_presence_does_not_end_the_stream(
    edge: XmppEdge, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def failing(_presence: Presence) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(edge.bot, "on_presence", failing)
    receive(edge, occupant("alice"), loop)  # raises through here if the filter let it out
    assert "handling a presence from" in caplog.text


def test_status_codes_are_ascii_digits_only(edge: XmppEdge) -> None:
    text = (
        f"<presence xmlns='jabber:client' from='{ROOM}/alice'><x xmlns='{MUC_USER}'>"
        "<item affiliation='none' role='participant'/><status code='110'/>"
        "<status code='\u00b2'/><status code='\u0661\u0661\u0660'/></x></presence>"
    )
    presence = edge.muc.to_presence(ET.fromstring(text))  # noqa: S314
    assert presence is not None
    assert presence.codes == frozenset({110})


# --- issue 12, finding 7: occupant ids only where the room advertises XEP-0421 ----------------

NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"


def with_occupant_id(nick: str, occupant_id: str) -> ET.Element:
    xml = ET.fromstring(occupant(nick))  # noqa: S314 - this file's own XML
    ET.SubElement(xml, f"{{{NS_OCCUPANT_ID}}}occupant-id", {"id": occupant_id})
    return xml


def test_an_occupant_id_is_taken_only_from_a_room_that_advertises_it(edge: XmppEdge) -> None:
    """XEP-0421: only a room that advertises urn:xmpp:occupant-id:0 strips the ids occupants
    write themselves and adds its own. Elsewhere an occupant picks any id it likes (another
    occupant's, to share its rate limit or cool-down), so the bot takes none."""
    claimed = with_occupant_id("mallory", "alices-id")
    not_said = edge.muc.to_presence(claimed)  # the room's disco#info not seen yet
    edge.muc.room_features(ROOM, frozenset({"http://jabber.org/protocol/muc"}))
    without = edge.muc.to_presence(claimed)
    edge.muc.room_features(ROOM, frozenset({"http://jabber.org/protocol/muc", NS_OCCUPANT_ID}))
    advertised = edge.muc.to_presence(claimed)
    edge.muc.room_features(ROOM, frozenset())  # it stopped advertising it
    dropped = edge.muc.to_presence(claimed)
    assert not_said is not None
    assert without is not None
    assert dropped is not None
    assert advertised is not None
    assert (not_said.occupant_id, without.occupant_id, dropped.occupant_id) == (None, None, None)
    assert advertised.occupant_id == "alices-id"


def own_presence(occupant_id: str | None) -> str:
    """The room's answer to the bot's join: its own presence (status 110)."""
    xml = ET.fromstring(  # noqa: S314 - this file's own XML
        f"<presence xmlns='jabber:client' from='{ROOM}/AddinBot' to='addinbot@localhost/b'>"
        f"<x xmlns='{MUC_USER}'><item affiliation='none' role='participant'/>"
        "<status code='110'/></x></presence>"
    )
    if occupant_id is not None:
        ET.SubElement(xml, f"{{{NS_OCCUPANT_ID}}}occupant-id", {"id": occupant_id})
    return ET.tostring(xml, encoding="unicode")


@pytest.mark.parametrize("vouches", [True, False])
def test_a_room_joined_without_asking_says_by_the_bots_own_presence_whether_ids_are_its_own(
    edge: XmppEdge, loop: asyncio.AbstractEventLoop, vouches: bool
) -> None:
    """The bot no longer asks a room's disco#info before joining it. The bot writes no
    occupant id into its join: an id in its own presence is the room's, so the room vouches
    for ids (XEP-0421). The occupants' presences come first; they are held until the bot's
    own says which, then handed over in order."""
    recorder: Any = edge.bot
    if not vouches:  # a disco#info once said so: the room's own word on joining prevails
        edge.muc.room_features(ROOM, frozenset({NS_OCCUPANT_ID}))
    edge.muc.join_stanza(ROOM, "AddinBot")
    claimed = ET.tostring(with_occupant_id("mallory", "mallorys-id"), encoding="unicode")
    receive(edge, claimed, loop)
    assert recorder.presences == []  # held: the room has not said yet
    receive(edge, own_presence("bots-id" if vouches else None), loop)
    receive(edge, claimed, loop)  # after the join: read as the room said
    seen = [(p.nick, p.occupant_id) for p in recorder.presences]
    if vouches:
        assert seen == [("mallory", "mallorys-id"), ("AddinBot", "bots-id"),
                        ("mallory", "mallorys-id")]
    else:
        assert seen == [("mallory", None), ("AddinBot", None), ("mallory", None)]
