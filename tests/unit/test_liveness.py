"""Room self-pings as plain logic: which rooms are due."""

from __future__ import annotations

from typing import Any

from bot.xmpp.liveness import Liveness, SelfPing

ROOM = "dev@conference.localhost"


class Bot:
    def __init__(self) -> None:
        self.dropped: list[str] = []

    def live_rooms(self) -> list[tuple[str, str]]:
        return [(ROOM, "AddinBot")]

    def on_room_dropped(self, room: str, nick: str) -> None:
        self.dropped.append(room)


class Edge:
    def __init__(self) -> None:
        self.bot = Bot()

    def add_event_handler(self, name: str, handler: Any) -> None: ...


def liveness_recording(pings: list[str], answer: SelfPing) -> Liveness:
    liveness = Liveness(Edge())  # type: ignore[arg-type]

    async def self_ping(room: str, nick: str) -> SelfPing:
        pings.append(room)
        return answer

    liveness.self_ping = self_ping  # type: ignore[method-assign]
    return liveness


async def test_a_room_never_heard_from_is_pinged_at_once_whatever_the_clock() -> None:
    # 8559.857847193 - (8559.857847193 - 0.3) is 0.2999999999992724 in floating point.
    pings: list[str] = []
    liveness = liveness_recording(pings, SelfPing.JOINED)
    liveness.room_every_s = 0.3
    await liveness.ping_quiet_rooms(8559.857847193)
    assert pings == [ROOM]


async def test_a_room_heard_from_recently_is_not_pinged_and_a_gone_answer_rejoins() -> None:
    pings: list[str] = []
    liveness = liveness_recording(pings, SelfPing.GONE)
    liveness.room_every_s = 300.0
    await liveness.ping_quiet_rooms(1000.0)
    assert pings == [ROOM]
    assert liveness.edge.bot.dropped == [ROOM]  # type: ignore[union-attr]
    await liveness.ping_quiet_rooms(1100.0)  # pinged 100 s ago: not due
    assert pings == [ROOM]
    await liveness.ping_quiet_rooms(1300.0)
    assert pings == [ROOM, ROOM]
