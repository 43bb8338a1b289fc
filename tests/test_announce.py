"""The announcer follows the audit log: what each change makes it say, with a recording
transport in place of the network and a real store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import Engine

from bot import addins
from bot.addins import Actor
from bot.announce import Announcer
from bot.commands.registry import Link
from bot.errors import StoreBusy
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


def make_announcer(engine: Engine, recorder: Recorder, rooms: Rooms) -> Announcer:
    return Announcer(engine, recorder, rooms, cooldown_s=60,
                     on_membership=lambda change: None, on_changes=lambda: None)


async def test_a_change_read_on_the_commands_thread_is_said_without_another_look(
    engine: Engine,
) -> None:
    addins.register(engine, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    recorder = Recorder()
    announcer = make_announcer(engine, recorder, live_rooms(ROOM))
    await announcer.start()
    try:
        addins.attach(engine, ADMIN, room=ROOM, name="Stock")
        await asyncio.to_thread(announcer.read_after_commit)  # as the command's thread does
        announcer.poke()
        assert not announcer._wake.is_set()  # nothing left for the follower to look for
        assert recorder.room == []  # said on the loop, once the command has answered
        announcer.announce()
    finally:
        await announcer.stop()
    assert recorder.room == [(
        ROOM, "This room's add-in is now “Stock”: https://a.example.org/",
        Link("https://a.example.org/", "Stock"),
    )]


async def test_reads_from_several_threads_say_each_change_once_in_order(engine: Engine) -> None:
    addins.register(engine, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    rooms = [f"r{number}@{POOL}" for number in range(30)]
    recorder = Recorder()
    announcer = make_announcer(engine, recorder, live_rooms(*rooms))
    await announcer.start()
    try:
        for room in rooms:
            addins.attach(engine, ADMIN, room=room, name="Stock")
        await asyncio.gather(*(asyncio.to_thread(announcer.read) for _ in range(6)))
        announcer.announce()
        await announcer.catch_up()  # and the follower finds nothing more
    finally:
        await announcer.stop()
    assert [room for room, _text, _link in recorder.room] == rooms
    assert announcer.cursor == addins.last_audit_id(engine)


async def test_a_failed_read_after_a_commit_leaves_the_change_to_the_follower(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    addins.register(engine, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    recorder = Recorder()
    announcer = make_announcer(engine, recorder, live_rooms(ROOM))
    await announcer.start()
    try:
        addins.attach(engine, ADMIN, room=ROOM, name="Stock")
        read = addins.changes_to_announce

        def away(*args: Any, **kwargs: Any) -> Any:
            raise StoreBusy()

        monkeypatch.setattr(addins, "changes_to_announce", away)
        await asyncio.to_thread(announcer.read_after_commit)
        assert "cannot read the change just made" in caplog.text
        monkeypatch.setattr(addins, "changes_to_announce", read)
        await announcer.catch_up()
    finally:
        await announcer.stop()
    assert [text for _room, text, _link in recorder.room] == [
        "This room's add-in is now “Stock”: https://a.example.org/"
    ]
