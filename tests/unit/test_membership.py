"""bot.membership with the fake edge: the nickname it joins under."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from bot.membership import Membership
from bot.rooms import Rooms
from tests.fakes import FakeEdge

ROOM = "dev@conference.localhost"


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
