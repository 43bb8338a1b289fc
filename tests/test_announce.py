"""The announcer follows the audit log: what each change makes it say, with a recording
transport in place of the network and a real store."""

from __future__ import annotations

from sqlalchemy import Engine

from bot import addins
from bot.addins import Actor
from bot.announce import Announcer
from bot.commands.registry import Link
from bot.rooms import Presence, Rooms

POOL = "conference.localhost"
ROOM = f"dev@{POOL}"
ADMIN = Actor("admin@localhost", "dm")


class Recorder:
    def __init__(self) -> None:
        self.room: list[tuple[str, str, Link | None]] = []

    def send_room(self, room: str, text: str, link: Link | None = None) -> None:
        self.room.append((room, text, link))

    def send_direct(self, to: str, text: str) -> None: ...

    def send_private(self, room: str, nick: str, text: str, link: Link | None = None) -> None: ...

    def join(self, room: str, nick: str) -> None: ...

    def leave(self, room: str, nick: str) -> None: ...


def live_rooms(*names: str) -> Rooms:
    rooms = Rooms()
    for room in names:
        rooms.joining(room, "AddinBot")
        rooms.update(Presence(room, "AddinBot", True, codes=frozenset({110})))
    return rooms


async def test_a_url_update_then_a_rename_still_announces_the_new_url(engine: Engine) -> None:
    addins.register(engine, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    addins.attach(engine, ADMIN, room=ROOM, name="Stock")
    recorder = Recorder()
    announcer = Announcer(engine, recorder, live_rooms(ROOM), cooldown_s=60,
                          on_membership=lambda change: None, on_changes=lambda: None)
    await announcer.start()  # from here on, changes are news
    try:
        addins.update_url(engine, ADMIN, pool=POOL, name="Stock", url="https://b.example.org/")
        addins.rename(engine, ADMIN, pool=POOL, name="Stock", new_name="Ticker")
        await announcer.catch_up()
    finally:
        await announcer.stop()
    assert recorder.room == [(
        ROOM,
        "This room's add-in is now “Ticker”: https://b.example.org/",
        Link("https://b.example.org/", "Ticker"),
    )]


async def test_two_url_updates_in_a_row_announce_only_the_latest(engine: Engine) -> None:
    addins.register(engine, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    addins.attach(engine, ADMIN, room=ROOM, name="Stock")
    recorder = Recorder()
    announcer = Announcer(engine, recorder, live_rooms(ROOM), cooldown_s=60,
                          on_membership=lambda change: None, on_changes=lambda: None)
    await announcer.start()
    try:
        addins.update_url(engine, ADMIN, pool=POOL, name="Stock", url="https://b.example.org/")
        addins.update_url(engine, ADMIN, pool=POOL, name="Stock", url="https://c.example.org/")
        await announcer.catch_up()
    finally:
        await announcer.stop()
    assert [text for _room, text, _link in recorder.room] == [
        "This room's add-in is now “Stock”: https://c.example.org/"
    ]


async def test_rooms_the_bot_is_not_in_are_not_told(engine: Engine) -> None:
    addins.register(engine, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    recorder = Recorder()
    announcer = Announcer(engine, recorder, live_rooms(), cooldown_s=60,
                          on_membership=lambda change: None, on_changes=lambda: None)
    await announcer.start()
    try:
        addins.attach(engine, ADMIN, room=ROOM, name="Stock")
        addins.detach(engine, ADMIN, room=ROOM)
        await announcer.catch_up()
    finally:
        await announcer.stop()
    assert recorder.room == []
