"""The edge's outgoing capabilities filter (XmppEdge._add_caps) does what slixmpp's XEP-0115
filter does, without being a coroutine every stanza sent has to wait for."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from slixmpp.xmlstream import tostring

from bot.xmpp.client import XmppEdge


def out_filters(edge: XmppEdge) -> list[Any]:
    return list(edge._XMLStream__filters["out"])  # type: ignore[attr-defined]


def both(edge: XmppEdge, stanza: Any, loop: asyncio.AbstractEventLoop) -> tuple[str, str]:
    """``stanza`` through slixmpp's filter and through the edge's, as XML."""
    theirs = loop.run_until_complete(edge.plugin["xep_0115"]._filter_add_caps(copy.copy(stanza)))
    ours = edge._add_caps(copy.copy(stanza))
    return tostring(theirs.xml), tostring(ours.xml)


def test_only_the_synchronous_filter_is_left_to_run(edge: XmppEdge) -> None:
    filters = out_filters(edge)
    assert edge._add_caps in filters
    assert edge.plugin["xep_0115"]._filter_add_caps not in filters
    assert not any(asyncio.iscoroutinefunction(f) for f in filters)


@pytest.mark.parametrize("verstring", [None, "q07IKJEyjvHSyhy//CH0CxmKi8w="])
def test_presences_and_messages_come_out_as_slixmpp_made_them(
    edge: XmppEdge, loop: asyncio.AbstractEventLoop, verstring: str | None
) -> None:
    caps = edge.plugin["xep_0115"]
    if verstring is not None:
        loop.run_until_complete(caps.assign_verstring(edge.boundjid.full, verstring))
    stanzas = [
        edge.make_presence(),
        edge.make_presence(pto="room@conference.localhost/AddinBot"),
        edge.make_presence(pshow="away"),
        edge.make_presence(ptype="unavailable"),
        edge.make_message(mto="alice@localhost", mbody="hello", mtype="chat"),
    ]
    outcomes = [both(edge, stanza, loop) for stanza in stanzas]

    for theirs, ours in outcomes:
        assert ours == theirs
    with_caps = [ours for _theirs, ours in outcomes if "http://jabber.org/protocol/caps" in ours]
    assert len(with_caps) == (3 if verstring else 0)  # the available presences, when known
    if verstring:
        assert all(f'ver="{verstring}"' in text for text in with_caps)
