"""bot/xmpp/matching.py: every handler the bot's XMPP edge registers is found for exactly
the stanzas it was found for before its matcher was gated."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXMLMask, MatchXPath, StanzaPath
from slixmpp.xmlstream.matcher.base import MatcherBase

from bot.xmpp import matching
from bot.xmpp.client import XmppEdge

CLIENT = "jabber:client"
ROOM = "room@conference.localhost"

# Children a stanza may carry, each of them something some handler looks for.
CHILDREN = [
    "",
    "<body>hello</body>",
    "<subject>topic</subject>",
    "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
    "<x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'"
    " jid='alice@localhost/x'/><status code='110'/></x>",
    "<x xmlns='http://jabber.org/protocol/muc#user'><invite from='alice@localhost'/></x>",
    "<x xmlns='http://jabber.org/protocol/muc#user'><decline from='alice@localhost'/></x>",
    "<x xmlns='http://jabber.org/protocol/muc#user'><status code='104'/></x>",
    "<x xmlns='http://jabber.org/protocol/muc'/>",
    "<x xmlns='jabber:x:data' type='form'/>",
    "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'/></event>",
    "<event xmlns='http://jabber.org/protocol/pubsub#event'><purge node='n'/></event>",
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>",
    "<query xmlns='jabber:iq:roster'/>",
    "<query xmlns='http://jabber.org/protocol/disco#info'/>",
    "<query xmlns='http://jabber.org/protocol/disco#items'/>",
    "<query xmlns='jabber:iq:version'/>",
    "<query xmlns='jabber:iq:oob'><url>https://example.org/</url></query>",
    "<ping xmlns='urn:xmpp:ping'/>",
    "<command xmlns='http://jabber.org/protocol/commands' node='list'/>",
    "<show>away</show>",
    "<show>error</show>",
]
TYPES = {
    "message": [None, "chat", "groupchat", "error", "normal", "headline"],
    "presence": [None, "unavailable", "error", "subscribe"],
    "iq": ["get", "set", "result", "error"],
}
# Stream-level elements: never gated as stanzas, but their handlers are in the same list.
STREAM = [
    "<a xmlns='urn:xmpp:sm:3' h='1'/>",
    "<r xmlns='urn:xmpp:sm:3'/>",
    "<enabled xmlns='urn:xmpp:sm:3' id='s' resume='true'/>",
    "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
    "<features xmlns='http://etherx.jabber.org/streams'/>",
    "<error xmlns='http://etherx.jabber.org/streams'/>",
    "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
]


def stanzas() -> Iterator[str]:
    for kind, types in TYPES.items():
        for kind_type, child, other in itertools.product(types, CHILDREN, CHILDREN[:5]):
            attrs = f"from='{ROOM}/alice' to='addinbot@localhost/bot' id='i'"
            if kind_type is not None:
                attrs += f" type='{kind_type}'"
            yield f"<{kind} xmlns='{CLIENT}' {attrs}>{child}{other}</{kind}>"
    yield from STREAM


def stanza(edge: XmppEdge, text: str) -> Any:
    """The stanza object slixmpp would make of ``text`` (this file's own XML)."""
    return edge._build_stanza(ET.fromstring(text))  # noqa: S314


def handlers(edge: XmppEdge) -> list[Callback]:
    return list(edge._XMLStream__handlers)  # type: ignore[attr-defined]


def ungated(matcher: MatcherBase) -> MatcherBase:
    inner = getattr(matcher, "matcher", None)
    return inner if isinstance(inner, MatcherBase) else matcher


def test_every_handler_is_found_for_the_same_stanzas_as_without_its_gate(edge: XmppEdge) -> None:
    registered = handlers(edge)
    gated = [h for h in registered if ungated(h._matcher) is not h._matcher]
    # slixmpp's own, its plugins' and the bot's handlers are all registered through the edge
    assert len(gated) >= 25, [h.name for h in registered]
    built = [stanza(edge, text) for text in stanzas()]
    assert len(built) > 400
    found_by_a_gated_handler = 0
    for one in built:
        for handler in registered:
            expected = ungated(handler._matcher).match(one)
            assert handler._matcher.match(one) == expected, (handler.name, str(one))
            found_by_a_gated_handler += expected and handler in gated
    assert found_by_a_gated_handler > 100  # the gates let through what is theirs


def test_a_gate_goes_only_where_the_path_says_what_it_can_match() -> None:
    for matcher in (StanzaPath("presence/muc"), StanzaPath("iq@type=set/roster"),
                    MatchXPath(f"{{{CLIENT}}}message/{{{CLIENT}}}body"),
                    MatchXPath("{urn:xmpp:sm:3}a")):
        assert matching.gated(matcher) is not matcher
    for matcher in (StanzaPath("muc"), MatchXPath("{*}message"), MatchXPath("{}message"),
                    MatchXMLMask(f"<message xmlns='{CLIENT}' type='groupchat'/>")):
        assert matching.gated(matcher) is matcher


def test_a_handler_registered_later_is_gated_too(edge: XmppEdge) -> None:
    seen: list[str] = []
    edge.register_handler(Callback("later", StanzaPath("iq@type=get/ping"), seen.append))
    later = next(h for h in handlers(edge) if h.name == "later")
    assert ungated(later._matcher) is not later._matcher
    message = stanza(edge, f"<message xmlns='{CLIENT}'><body>x</body></message>")
    ping = stanza(edge, f"<iq xmlns='{CLIENT}' type='get' id='p'><ping xmlns='urn:xmpp:ping'/>"
                        "</iq>")
    assert not later.match(message)
    assert later.match(ping)
