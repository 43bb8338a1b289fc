"""bot.invitations with the fake edge and a fake clock: the limits on anyone's but an
admin's invitations (per inviter, in all, a cool-down per room), declines without a look
logged once per burst, and an admin's invitation to a room that does not exist (issue 12,
finding 3). Over a real socket: tests/integration/test_invitation_limits.py."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from bot.config import Settings
from bot.invitations import Invitation, Invitations
from bot.rooms import Rooms
from bot.values import Presence
from tests.fakes import FakeEdge

POOL = "conference.localhost"
SELF = 110


class Scene:
    def __init__(self, settings: Settings) -> None:
        self.now = 1000.0
        self.rooms = Rooms()
        self.edge = FakeEdge()
        self.declined: list[tuple[str, str]] = []  # (room, reason)
        self.tasks: list[asyncio.Task[None]] = []
        self.kept: set[str] = set()
        self.invitations = Invitations(
            settings, None, self.rooms, self.edge,  # type: ignore[arg-type]
            nick=lambda: "AddinBot", serving=lambda room: room in self.kept,
            keep=lambda room, keep: self.kept.add(room) if keep else self.kept.discard(room),
            spawn=self.spawn, changed=lambda _changes: None, clock=lambda: self.now,
        )

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        if getattr(work, "__name__", "") in ("_record", "_accept"):
            work.close()  # the store's part: not what these tests are about
            return
        self.tasks.append(asyncio.ensure_future(work))

    async def invite(self, room: str, inviter: str | None, *, exists: bool | None = True
                     ) -> None:
        invitation = Invitation(room, inviter, inviter or f"{room}/nick", False, exists)
        self.invitations.receive(invitation, lambda why: self.declined.append((room, why)))
        while self.tasks:
            await self.tasks.pop()

    def look_ends(self, room: str) -> None:
        """The bot is let in and sees nobody it knows: it leaves and declines."""
        self.rooms.update(Presence(room, "AddinBot", True, codes=frozenset({SELF, 100})))
        self.invitations.joined(room)


@pytest.fixture
def scene(settings: Callable[..., Settings]) -> Scene:
    return Scene(settings(invitations={"per_inviter": 2, "total": 3, "window_s": 3600,
                                       "room_cooldown_s": 600}))


def room(n: int) -> str:
    return f"r{n}@{POOL}"


async def test_a_room_is_looked_at_once_in_its_cool_down(scene: Scene) -> None:
    await scene.invite(room(1), "mallory@localhost")
    scene.look_ends(room(1))
    for _ in range(9):
        await scene.invite(room(1), "mallory@localhost")
    assert scene.edge.joined == [room(1)]
    assert scene.edge.left == [room(1)]
    assert len(scene.declined) == 10
    assert all("the bot looked at" in why for _room, why in scene.declined[1:])
    assert scene.declined[1][1] == (
        f"the bot looked at {room(1)} 1 s ago and looks at a room at most once every 10 min. "
        f"Try again in 10 min, or ask an addinbot admin to invite it."
    )
    scene.now += 601
    await scene.invite(room(1), "carol@localhost")
    assert scene.edge.joined == [room(1), room(1)]


async def test_one_inviter_has_the_bot_look_a_few_times_then_hears_once(scene: Scene) -> None:
    for n in range(6):
        await scene.invite(room(n), "mallory@localhost")
    assert scene.edge.joined == [room(0), room(1)]
    assert [r for r, _why in scene.declined] == [room(2)]  # told once, then nothing
    assert scene.declined[0][1] == (
        "Too many invitations from you: the bot looks at 2 rooms every 60 min for one person. "
        "Ask an addinbot admin to invite it, or try again in 60 min; the bot says nothing more "
        "until then."
    )
    scene.now += 3601
    await scene.invite(room(9), "mallory@localhost")
    assert scene.edge.joined[-1] == room(9)


async def test_everyone_together_has_the_bot_look_at_most_total_times(scene: Scene) -> None:
    for n, who in enumerate(["a", "b", "c", "d", "e"]):
        await scene.invite(room(n), f"{who}@localhost")
    assert scene.edge.joined == [room(0), room(1), room(2)]
    assert [r for r, _why in scene.declined] == [room(3), room(4)]
    assert scene.declined[0][1].startswith(
        "the bot has looked at 3 rooms for invitations in the last 60 min, as many as it will."
    )


async def test_an_admin_is_held_to_no_invitation_limit(scene: Scene) -> None:
    for n in range(8):
        await scene.invite(room(n), "admin@localhost")
    await scene.invite(room(0), "admin@localhost")  # in a cool-down for anyone else
    assert scene.declined == []
    assert scene.edge.joined == []  # accepted outright: membership joins, not a look


async def test_an_admins_invitation_to_a_room_that_does_not_exist_is_declined(
    scene: Scene,
) -> None:
    scene.edge.missing.add(room(1))
    await scene.invite(room(1), "admin@localhost", exists=None)  # the bot asks the room
    assert scene.edge.asked == [room(1)]
    assert scene.declined == [(room(1), f"there is no room {room(1)}.")]
    assert scene.kept == set()


async def test_declines_without_a_look_are_logged_once_per_burst(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.invitations")
    for n in range(301):
        await scene.invite(f"lobby{n}@elsewhere.localhost", "mallory@localhost")
    assert len(scene.declined) == 301
    assert caplog.records == []  # not yet: the burst is still going
    scene.invitations.stop()  # (or BURST_S later)
    [line] = [r.getMessage() for r in caplog.records]
    # The time the burst took is the machine's (0.0 s idle, 0.1 s under load): any.
    assert re.fullmatch(
        r"301 invitations declined in \d+\.\d s from 1 sender; the first, to "
        r"lobby0@elsewhere\.localhost from mallory@localhost: Room lobby0@elsewhere\.localhost "
        r"is not in a served pool \(conference\.localhost\)\.", line
    ), line


async def test_a_members_only_room_that_refuses_the_look_says_what_its_owner_can_do(
    scene: Scene,
) -> None:
    await scene.invite(room(1), "carol@localhost")
    scene.invitations.join_failed(room(1), "registration-required")
    assert scene.declined == [(room(1), (
        f"{room(1)} is members-only and the bot is not a member. Give the bot the member "
        f"affiliation in {room(1)} and invite it again."
    ))]
