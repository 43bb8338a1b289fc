"""bot.membership with the fake edge: the nickname it joins under."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from bot.membership import Membership
from bot.rooms import Rooms
from bot.values import AuditEntry
from tests.fakes import FakeEdge

ROOM = "dev@conference.localhost"


def entry(number: int, action: str) -> AuditEntry:
    return AuditEntry(number, datetime.now(UTC), "admin@localhost", "direct", action,
                      "conference.localhost", None, ROOM, "")


async def test_a_nickname_conflict_is_forgotten_once_the_room_lets_the_bot_in(settings) -> None:
    """After a conflict the bot joins as AddinBot_; once in, a later rejoin (a kick, a lost
    connection) starts again from its own nickname, rather than adding an underscore for
    every conflict it ever met."""
    rooms = Rooms()
    started: list[asyncio.Task[None]] = []

    def spawn(work: Coroutine[Any, Any, None]) -> None:
        started.append(asyncio.create_task(work))

    async def settled() -> None:  # the join waits for the room to say that it exists
        while started:
            await started.pop()

    membership = Membership(
        settings(), store=None, rooms=rooms, transport=FakeEdge(),  # type: ignore[arg-type]
        spawn=spawn, changed=lambda changes: None,
    )
    membership.online = True
    membership.wanted = {ROOM}
    nicks: list[str | None] = []
    for _ in range(3):  # joined, kicked, rejoined: three times, each after a conflict
        membership.join(ROOM)
        await settled()
        membership.join_refused(ROOM, "conflict", final=False)
        await settled()
        nicks.append(rooms.nick_in(ROOM))
        membership.joined(ROOM)
    assert nicks == ["AddinBot_", "AddinBot_", "AddinBot_"]


async def test_several_processes_serve_exactly_the_leased_rooms(settings) -> None:
    """With leases (bot.cluster), the rooms served are those handed over: new ones joined
    (a taken-over one says so once it is joined), others left, and only changes made after
    a room was taken announced there; a room left by `leave` is not joined again by a beat
    that began before the leave, only after a new `join`."""
    rooms, edge = Rooms(), FakeEdge()
    started: list[asyncio.Task[None]] = []

    def spawn(work: Coroutine[Any, Any, None]) -> None:
        started.append(asyncio.create_task(work))

    async def settled() -> None:
        while started:
            await started.pop()

    membership = Membership(
        settings(), store=None, rooms=rooms, transport=edge,  # type: ignore[arg-type]
        spawn=spawn, changed=lambda changes: None, leased=True,
    )
    membership.online = True
    other = "ops@conference.localhost"
    membership.serve(frozenset({ROOM, other}), fresh=frozenset({ROOM}), since=5)
    await settled()
    assert sorted(edge.joined) == [ROOM, other]
    # Changes up to 5 were for the rooms' earlier holders to announce; later ones are its.
    assert not membership.announces(other, 5)
    assert membership.announces(other, 6)
    assert membership.joined(ROOM) is False  # served by no process before
    assert membership.joined(other) is True  # taken over: those present are looked at
    membership.serve(frozenset({ROOM}), fresh=frozenset())
    assert edge.left == [other]
    membership.follow(entry(1, "leave"))
    assert edge.left == [other, ROOM]
    membership.serve(frozenset({ROOM}), fresh=frozenset())  # a beat from before the leave
    await settled()
    assert sorted(edge.joined) == [ROOM, other]
    membership.serve(frozenset(), fresh=frozenset())
    membership.follow(entry(2, "join"))
    membership.serve(frozenset({ROOM}), fresh=frozenset())
    await settled()
    assert sorted(edge.joined) == [ROOM, ROOM, other]
