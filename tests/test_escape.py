"""The bot's XML escaping gives exactly slixmpp's output, faster."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from slixmpp import Message

from bot.config import XmppSettings
from bot.xmpp import escape
from bot.xmpp.client import XmppEdge


@given(st.text())
def test_the_same_output_as_slixmpp_for_any_text(text: str) -> None:
    assert escape.escape(text) == escape.SLIXMPP_ESCAPE(text)


def test_every_special_character_and_its_neighbours() -> None:
    text = "a&b<c>d'e\"f&amp;“g” — h]]>"
    assert escape.escape(text) == escape.SLIXMPP_ESCAPE(text)
    assert escape.escape(text, use_cdata=True) == escape.SLIXMPP_ESCAPE(text, True)


def test_a_stanza_serialises_the_same_once_installed() -> None:
    message = Message()
    message["to"] = "o'neil@example.org/a\"b"
    message["type"] = "chat"
    message["body"] = "“Stock” — https://x.example.org/?a=1&b=<2> 'q' \"d\""
    before = str(message)
    escape.install()
    try:
        assert escape._TOSTRING.escape is escape.escape  # in use, not merely defined
        assert str(message) == before
        assert "&amp;b=&lt;2&gt; &apos;q&apos; &quot;d&quot;" in before
    finally:
        escape._TOSTRING.escape = escape.SLIXMPP_ESCAPE


async def test_the_xmpp_edge_installs_it() -> None:
    """(Inside the test's own event loop: built outside one, the edge would make a loop of
    its own that nothing closes.)"""
    escape._TOSTRING.escape = escape.SLIXMPP_ESCAPE
    XmppEdge(XmppSettings(jid="addinbot@localhost", tls="plain", host="127.0.0.1"), "pw", [])
    try:
        assert escape._TOSTRING.escape is escape.escape
    finally:
        escape._TOSTRING.escape = escape.SLIXMPP_ESCAPE
