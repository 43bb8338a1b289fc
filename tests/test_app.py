"""The bot between edge and store, with a recording transport: joining what it serves."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine
from sqlmodel import Session

from bot import addins
from bot.app import App
from bot.values import Actor, Link
from store.models import Pool, Room

POOL = "conference.localhost"


class Transport:
    """Records joins; refuses to join what the network layer would refuse."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.joined: list[str] = []
        self.left: list[str] = []

    def join(self, room: str, nick: str) -> None:
        if room in self.refuse:
            raise ValueError(f"invalid JID {room}")
        self.joined.append(room)

    def leave(self, room: str, nick: str) -> None:
        if room in self.refuse:
            raise ValueError(f"invalid JID {room}")
        self.left.append(room)

    def send_direct(self, to: str, text: str) -> None: ...

    def send_private(self, room: str, nick: str, text: str, link: Link | None = None) -> None: ...

    def send_room(self, room: str, text: str, link: Link | None = None) -> None: ...


async def test_one_unjoinable_remembered_room_does_not_stop_the_others(
    engine: Engine, settings
) -> None:
    bad = f"a<b@{POOL}"  # stored before room addresses were checked
    with Session(engine) as session:
        pool = Pool(name=POOL)
        session.add(pool)
        session.flush()
        assert pool.id is not None
        session.add(Room(jid=bad, pool_id=pool.id, joined=True))
        session.commit()
    for name in ("alpha", "zulu"):
        addins.set_joined(engine, Actor("admin@localhost", "dm"), room=f"{name}@{POOL}",
                          joined=True)
    transport = Transport(refuse={bad})
    app = App(settings(), engine, transport)
    await app.start()
    try:
        app.on_online()
        for _ in range(200):
            if len(transport.joined) == 2 and any(
                e.action == "stop" for e in addins.audit(engine, limit=5)
            ):
                break
            await asyncio.sleep(0.01)
        assert transport.joined == [f"alpha@{POOL}", f"zulu@{POOL}"]
        stop = [e for e in addins.audit(engine, limit=5) if e.action == "stop"]
        assert [(e.room, e.detail) for e in stop] == [
            (bad, "cannot join: not a valid room address")
        ]
    finally:
        await app.stop()
