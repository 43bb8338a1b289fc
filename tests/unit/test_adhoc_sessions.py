"""The Control Panel's open forms (bot.xmpp.adhoc sessions) are bounded per account and in
all, and the bound in all never evicts an admin's form for anyone else's (issue 12,
finding 6). Over a real socket: tests/integration/test_public_server.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from slixmpp.exceptions import XMPPError

from bot.xmpp import adhoc
from bot.xmpp.client import XmppEdge
from bot.xmpp.panel import PANEL, Requester

ADMIN = Requester("admin@localhost", True)


def stranger(number: int) -> Requester:
    return Requester(f"s{number}@localhost", False, ("room@conference.localhost",))


def open_form(edge: XmppEdge, requester: Requester, loop: asyncio.AbstractEventLoop) -> str:
    async def opened() -> str:
        return edge.adhoc._open(PANEL.operations["attach"], requester, requester.jid + "/r", [])

    return loop.run_until_complete(opened())


@pytest.fixture
def edge(make_edge: Callable[[], XmppEdge], monkeypatch: pytest.MonkeyPatch) -> XmppEdge:
    monkeypatch.setattr(adhoc, "MOST_SESSIONS", 10)
    return make_edge()


def test_one_account_holds_a_few_forms_its_oldest_going_first(
    edge: XmppEdge, loop: asyncio.AbstractEventLoop
) -> None:
    opened = [open_form(edge, stranger(1), loop) for _ in range(8)]
    assert list(edge.adhoc.sessions) == opened[-adhoc.MOST_PER_REQUESTER:]


def test_many_strangers_never_evict_an_admins_form(
    edge: XmppEdge, loop: asyncio.AbstractEventLoop
) -> None:
    admins = [open_form(edge, ADMIN, loop) for _ in range(2)]
    for number in range(40):  # forty accounts, two forms each: far past the cap of 10
        open_form(edge, stranger(number), loop)
        open_form(edge, stranger(number), loop)
    assert len(edge.adhoc.sessions) == 10
    assert all(sid in edge.adhoc.sessions for sid in admins)


def test_when_only_admins_forms_are_open_a_stranger_is_told_to_wait(
    edge: XmppEdge, loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adhoc, "MOST_SESSIONS", 3)
    admins = [open_form(edge, Requester(f"a{n}@localhost", True), loop) for n in range(3)]
    with pytest.raises(XMPPError) as refused:
        open_form(edge, stranger(1), loop)
    assert refused.value.condition == "resource-constraint"
    assert list(edge.adhoc.sessions) == admins
    newest = open_form(edge, Requester("a9@localhost", True), loop)  # an admin's goes first
    assert list(edge.adhoc.sessions) == [*admins[1:], newest]
