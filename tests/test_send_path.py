"""The edge writes what it sends at once (XmppEdge._write_now), exactly as slixmpp's send
queue would have written it a loop turn later: same bytes, same filters (stream management
counts it), and never ahead of a stanza already queued."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bot.xmpp.client import XmppEdge

TEXT = "Room r@conference.localhost now has the add-in “Add-in 002”: https://a.example/<2>&"


class Wire:
    """A transport that keeps what is written."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return False


def connected(edge: XmppEdge) -> tuple[XmppEdge, Wire]:
    """``edge`` as if its session were up, writing to a Wire."""
    wire = Wire()
    edge.transport = wire
    edge._session_started = True
    management = edge.plugin["xep_0198"]
    management.enabled_out = True
    management.window = 1000  # no ack requests in the way
    management.window_counter = 1000
    return edge, wire


def through_the_queue(edge: XmppEdge, wire: Wire, send: Any,
                      loop: asyncio.AbstractEventLoop) -> list[bytes]:
    """What slixmpp's own send queue writes for ``send()``."""

    async def run() -> None:
        task = asyncio.create_task(edge.run_filters())
        send()
        await edge.waiting_queue.join()  # every queued stanza written
        task.cancel()

    loop.run_until_complete(run())
    return wire.written


def the_sends(edge: XmppEdge) -> list[Any]:
    return [
        lambda: edge.send_direct("admin@localhost", TEXT),
        lambda: edge.send_room("r@conference.localhost", TEXT),
        lambda: edge.join("r@conference.localhost", "AddinBot"),
    ]


@pytest.mark.parametrize("which", range(3))
def test_written_at_once_as_the_queue_would_have_written_it(
    loop: asyncio.AbstractEventLoop, make_edge: Callable[[], XmppEdge], which: int
) -> None:
    edge, wire = connected(make_edge())
    send = the_sends(edge)[which]
    send()  # no loop turn: it must be on the wire already
    assert len(wire.written) == 1
    assert edge.plugin["xep_0198"].unacked_queue  # counted for stream management

    queued_edge, queued_wire = connected(make_edge())
    queued_edge._write_now = lambda stanza: False  # type: ignore[method-assign]
    queued = through_the_queue(queued_edge, queued_wire, the_sends(queued_edge)[which], loop)

    def without_id(data: bytes) -> bytes:  # every stanza gets an id of its own
        text = data.decode()
        start = text.index(' id="') + 5
        return (text[:start] + text[text.index('"', start):]).encode()

    assert [without_id(d) for d in wire.written] == [without_id(d) for d in queued]


def test_never_ahead_of_a_stanza_already_queued(
    loop: asyncio.AbstractEventLoop, make_edge: Callable[[], XmppEdge]
) -> None:
    edge, wire = connected(make_edge())
    edge.send(edge.make_message(mto="admin@localhost", mbody="first", mtype="chat"))
    edge.send_direct("admin@localhost", "second")
    assert wire.written == []  # both wait for the queue, in order

    through_the_queue(edge, wire, lambda: None, loop)
    bodies = [d.decode() for d in wire.written]
    assert len(bodies) == 2
    assert "first" in bodies[0]
    assert "second" in bodies[1]


def test_left_to_the_queue_when_a_filter_must_be_awaited(
    loop: asyncio.AbstractEventLoop, make_edge: Callable[[], XmppEdge]
) -> None:
    edge, wire = connected(make_edge())

    async def slow_filter(stanza: Any) -> Any:
        await asyncio.sleep(0)
        return stanza

    edge.add_filter("out", slow_filter)
    edge.send_direct("admin@localhost", TEXT)
    assert wire.written == []
    assert len(through_the_queue(edge, wire, lambda: None, loop)) == 1


def test_left_to_the_queue_before_the_session_starts(make_edge: Callable[[], XmppEdge]) -> None:
    edge, wire = connected(make_edge())
    edge._session_started = False
    edge.send_direct("admin@localhost", TEXT)
    assert wire.written == []
