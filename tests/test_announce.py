"""The announcer follows the audit log: what each change makes it say, with a recording
transport in place of the network and a real store."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import Engine

from bot import addins, announce
from bot.announce import Announcer
from bot.rooms import Rooms
from bot.values import Actor, AuditEntry, Change, Link, Presence

POOL = "conference.localhost"
ROOM = f"dev@{POOL}"
ADMIN = Actor("admin@localhost", "dm")


@pytest.fixture(autouse=True)
def no_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The follower reads only when a test says so (catch_up, poke), not on a timer that a
    slow machine could let fire in the middle of a test."""
    monkeypatch.setattr(announce, "POLL_S", 3600.0)


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


def elsewhere(engine: Engine, announcer: Announcer) -> None:
    """From here on, changes reach the announcer as another process's do: through the
    audit log, read by the follower."""
    addins.unlisten(engine, announcer._committed)


async def test_a_url_update_then_a_rename_still_announces_the_new_url(engine: Engine) -> None:
    addins.register(engine, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    addins.attach(engine, ADMIN, room=ROOM, name="Stock")
    recorder = Recorder()
    announcer = Announcer(engine, recorder, live_rooms(ROOM), cooldown_s=60,
                          on_membership=lambda change: None, on_changes=lambda: None)
    await announcer.start()  # from here on, changes are news
    elsewhere(engine, announcer)
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


async def test_two_url_updates_made_elsewhere_announce_only_the_latest(
    engine: Engine,
) -> None:
    addins.register(engine, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    addins.attach(engine, ADMIN, room=ROOM, name="Stock")
    recorder = Recorder()
    announcer = Announcer(engine, recorder, live_rooms(ROOM), cooldown_s=60,
                          on_membership=lambda change: None, on_changes=lambda: None)
    await announcer.start()
    elsewhere(engine, announcer)
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


async def test_this_processs_change_comes_from_its_commit_without_a_read(
    engine: Engine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    addins.register(engine, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    recorder = Recorder()
    announcer = make_announcer(engine, recorder, live_rooms(ROOM))
    await announcer.start()
    reads: list[int] = []
    read = addins.changes_to_announce
    monkeypatch.setattr(addins, "changes_to_announce",
                        lambda *a, **k: reads.append(1) or read(*a, **k))
    try:
        await asyncio.to_thread(addins.attach, engine, ADMIN, room=ROOM, name="Stock")
        assert recorder.room == []  # said on the loop, once the command has answered ...
        announcer.poke()
        assert not announcer._wake.is_set()  # ... with nothing left for the follower
    finally:
        await announcer.stop()
    assert reads == []
    assert recorder.room == [(
        ROOM, "This room's add-in is now “Stock”: https://a.example.org/",
        Link("https://a.example.org/", "Stock"),
    )]


async def test_a_change_made_elsewhere_in_between_is_left_to_the_follower(
    engine: Engine,
) -> None:
    """Another process's change came between: this process's own is not said before it."""
    addins.register(engine, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    addins.register(engine, ADMIN, pool=POOL, name="Ticker", url="https://t.example.org/")
    addins.attach(engine, ADMIN, room=ROOM, name="Stock")
    recorder = Recorder()
    announcer = make_announcer(engine, recorder, live_rooms(ROOM))
    await announcer.start()
    try:
        elsewhere(engine, announcer)
        addins.detach(engine, ADMIN, room=ROOM)
        addins.listen(engine, announcer._committed)
        await asyncio.to_thread(addins.attach, engine, ADMIN, room=ROOM, name="Ticker")
        announcer.poke()
        assert recorder.room == []
        assert announcer._wake.is_set()  # the follower is due to look
        await announcer.catch_up()
    finally:
        await announcer.stop()
    assert [text for _room, text, _link in recorder.room] == [
        "This room no longer has an add-in.",
        "This room's add-in is now “Ticker”: https://t.example.org/",
    ]


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


async def test_each_url_update_made_here_is_said_as_it_was_committed(engine: Engine) -> None:
    addins.register(engine, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    addins.attach(engine, ADMIN, room=ROOM, name="Stock")
    addins.attach(engine, ADMIN, room=f"ops@{POOL}", name="Stock")
    recorder = Recorder()
    announcer = make_announcer(engine, recorder, live_rooms(ROOM))  # not in ops
    await announcer.start()
    try:
        for url in ("https://b.example.org/", "https://c.example.org/"):
            addins.update_url(engine, ADMIN, pool=POOL, name="Stock", url=url)
            announcer.poke()
    finally:
        await announcer.stop()
    assert [(room, text) for room, text, _link in recorder.room] == [
        (ROOM, "This room's add-in is now “Stock”: https://b.example.org/"),
        (ROOM, "This room's add-in is now “Stock”: https://c.example.org/"),
    ]


async def test_stopping_just_as_the_follower_is_woken_still_stops_it(engine: Engine) -> None:
    """Python 3.11's asyncio.wait_for swallows a cancellation that arrives just after what
    it waits for is done: a follower waiting that way would outlive stop() for good."""
    announcer = make_announcer(engine, Recorder(), live_rooms(ROOM))
    await announcer.start()
    await asyncio.sleep(0)  # the follower is waiting for a poke or the next poll
    announcer._wake.set()
    await asyncio.sleep(0)  # what it waits for is done; the follower has not resumed yet
    stopping = asyncio.create_task(announcer.stop())
    await asyncio.sleep(0.2)  # a cancelled follower is gone within a few loop turns
    done = stopping.done()
    if not done:  # (cancelling stop() cancels the follower it waits for once more)
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
    assert done, "stop() is still waiting for the follower"


async def test_changes_handed_over_out_of_order_are_read_not_lost(engine: Engine) -> None:
    """Two commits here hand over their changes from two threads, the later one first: the
    earlier is queued, and the later is left for a read — which poke() asks for."""
    addins.register(engine, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    recorder = Recorder()
    announcer = make_announcer(engine, recorder, live_rooms(ROOM, f"ops@{POOL}"))
    await announcer.start()
    try:
        elsewhere(engine, announcer)  # hand them over by hand, in the wrong order
        first = addins.attach(engine, ADMIN, room=ROOM, name="Stock")
        second = addins.attach(engine, ADMIN, room=f"ops@{POOL}", name="Stock")
        first_id, second_id = [c.id for c in addins.changes_since(engine, 0)][-2:]
        announcer._committed([Change(entry(engine, second_id), (second,))])
        announcer._committed([Change(entry(engine, first_id), (first,))])
        announcer.poke()  # says the first at once ...
        assert [room for room, _text, _link in recorder.room] == [ROOM]
        assert announcer._wake.is_set()  # ... and has the follower read the second
        await announcer.catch_up()
    finally:
        await announcer.stop()
    assert [room for room, _text, _link in recorder.room] == [ROOM, f"ops@{POOL}"]


def entry(engine: Engine, audit_id: int) -> AuditEntry:
    return next(c for c in addins.changes_since(engine, audit_id - 1) if c.id == audit_id)
