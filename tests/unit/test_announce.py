"""The announcer follows the audit log: what each change makes it say, with a recording
transport in place of the network and a real store."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bot import addins, announce
from bot.announce import Announcer
from bot.rooms import Rooms
from bot.values import Actor, AuditEntry, Link, Presence
from store import Store
from tests.fakes import FakeEdge

POOL = "conference.localhost"
ROOM = f"dev@{POOL}"
ADMIN = Actor("admin@localhost", "dm")


@pytest.fixture(autouse=True)
def no_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The follower reads only when a test says so (catch_up, poke), not on a timer that a
    slow machine could let fire in the middle of a test."""
    monkeypatch.setattr(announce, "POLL_S", 3600.0)


def live_rooms(*names: str) -> Rooms:
    rooms = Rooms()
    for room in names:
        rooms.joining(room, "AddinBot")
        rooms.update(Presence(room, "AddinBot", True, codes=frozenset({110})))
    return rooms


# A change made by calling addins directly, and not handed over (announcer.handed), reaches
# the announcer as another process's does: through the audit log, read by the follower.


async def test_a_url_update_then_a_rename_still_announces_the_new_url(store: Store) -> None:
    addins.register(store, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    addins.attach(store, ADMIN, room=ROOM, name="Stock")
    recorder = FakeEdge()
    announcer = Announcer(store, recorder, live_rooms(ROOM), cooldown_s=60,
                          on_membership=lambda change: None, on_changes=lambda: None)
    await announcer.start()  # from here on, changes are news
    try:
        addins.update_url(store, ADMIN, pool=POOL, name="Stock", url="https://b.example.org/")
        addins.rename(store, ADMIN, pool=POOL, name="Stock", new_name="Ticker")
        await announcer.catch_up()
    finally:
        await announcer.stop()
    assert recorder.in_rooms() == [(
        ROOM,
        "This room's add-in is now “Ticker”: https://b.example.org/",
        Link("https://b.example.org/", "Ticker"),
    )]


async def test_two_url_updates_made_elsewhere_announce_only_the_latest(
    store: Store,
) -> None:
    addins.register(store, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    addins.attach(store, ADMIN, room=ROOM, name="Stock")
    recorder = FakeEdge()
    announcer = Announcer(store, recorder, live_rooms(ROOM), cooldown_s=60,
                          on_membership=lambda change: None, on_changes=lambda: None)
    await announcer.start()
    try:
        addins.update_url(store, ADMIN, pool=POOL, name="Stock", url="https://b.example.org/")
        addins.update_url(store, ADMIN, pool=POOL, name="Stock", url="https://c.example.org/")
        await announcer.catch_up()
    finally:
        await announcer.stop()
    assert [text for _room, text, _link in recorder.in_rooms()] == [
        "This room's add-in is now “Stock”: https://c.example.org/"
    ]


async def test_rooms_the_bot_is_not_in_are_not_told(store: Store) -> None:
    addins.register(store, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    recorder = FakeEdge()
    announcer = Announcer(store, recorder, live_rooms(), cooldown_s=60,
                          on_membership=lambda change: None, on_changes=lambda: None)
    await announcer.start()
    try:
        addins.attach(store, ADMIN, room=ROOM, name="Stock")
        addins.detach(store, ADMIN, room=ROOM)
        await announcer.catch_up()
    finally:
        await announcer.stop()
    assert recorder.in_rooms() == []


def make_announcer(store: Store, recorder: FakeEdge, rooms: Rooms) -> Announcer:
    return Announcer(store, recorder, rooms, cooldown_s=60,
                     on_membership=lambda change: None, on_changes=lambda: None)


async def test_this_processs_change_comes_back_with_its_operation_without_a_read(
    store: Store, monkeypatch: pytest.MonkeyPatch,
) -> None:
    addins.register(store, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    recorder = FakeEdge()
    announcer = make_announcer(store, recorder, live_rooms(ROOM))
    await announcer.start()
    reads: list[int] = []
    read = addins.changes_to_announce
    monkeypatch.setattr(addins, "changes_to_announce",
                        lambda *a, **k: reads.append(1) or read(*a, **k))
    try:
        done = await asyncio.to_thread(addins.attach, store, ADMIN, room=ROOM, name="Stock")
        announcer.handed(done.changes)
        assert recorder.in_rooms() == []  # said on the loop, once the command has answered ...
        announcer.poke()
        assert not announcer._wake.is_set()  # ... with nothing left for the follower
    finally:
        await announcer.stop()
    assert reads == []
    assert recorder.in_rooms() == [(
        ROOM, "This room's add-in is now “Stock”: https://a.example.org/",
        Link("https://a.example.org/", "Stock"),
    )]


async def test_a_change_made_elsewhere_in_between_is_left_to_the_follower(
    store: Store,
) -> None:
    """Another process's change came between: this process's own is not said before it."""
    addins.register(store, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    addins.register(store, ADMIN, pool=POOL, name="Ticker", url="https://t.example.org/")
    addins.attach(store, ADMIN, room=ROOM, name="Stock")
    recorder = FakeEdge()
    announcer = make_announcer(store, recorder, live_rooms(ROOM))
    await announcer.start()
    try:
        addins.detach(store, ADMIN, room=ROOM)  # made elsewhere: not handed over
        done = await asyncio.to_thread(addins.attach, store, ADMIN, room=ROOM, name="Ticker")
        announcer.handed(done.changes)
        announcer.poke()
        assert recorder.in_rooms() == []
        assert announcer._wake.is_set()  # the follower is due to look
        await announcer.catch_up()
        announcer.handed(done.changes)  # handed over again, or read again: said once
        await announcer.catch_up()
    finally:
        await announcer.stop()
    assert [text for _room, text, _link in recorder.in_rooms()] == [
        "This room no longer has an add-in.",
        "This room's add-in is now “Ticker”: https://t.example.org/",
    ]


async def test_reads_on_several_threads_say_each_change_once_in_order(store: Store) -> None:
    addins.register(store, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    rooms = [f"r{number}@{POOL}" for number in range(30)]
    recorder = FakeEdge()
    announcer = make_announcer(store, recorder, live_rooms(*rooms))
    await announcer.start()
    try:
        for room in rooms:
            addins.attach(store, ADMIN, room=room, name="Stock")
        await asyncio.gather(*(announcer.catch_up() for _ in range(6)))
        await announcer.catch_up()  # and the follower finds nothing more
    finally:
        await announcer.stop()
    assert [room for room, _text, _link in recorder.in_rooms()] == rooms
    assert announcer.cursor == addins.last_audit_id(store)


async def test_each_url_update_made_here_is_said_as_it_was_committed(store: Store) -> None:
    addins.register(store, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    addins.attach(store, ADMIN, room=ROOM, name="Stock")
    addins.attach(store, ADMIN, room=f"ops@{POOL}", name="Stock")
    recorder = FakeEdge()
    announcer = make_announcer(store, recorder, live_rooms(ROOM))  # not in ops
    await announcer.start()
    try:
        for url in ("https://b.example.org/", "https://c.example.org/"):
            announcer.handed(
                addins.update_url(store, ADMIN, pool=POOL, name="Stock", url=url).changes
            )
            announcer.poke()
    finally:
        await announcer.stop()
    assert [(room, text) for room, text, _link in recorder.in_rooms()] == [
        (ROOM, "This room's add-in is now “Stock”: https://b.example.org/"),
        (ROOM, "This room's add-in is now “Stock”: https://c.example.org/"),
    ]


async def test_stopping_just_as_the_follower_is_woken_still_stops_it(store: Store) -> None:
    """Python 3.11's asyncio.wait_for swallows a cancellation that arrives just after what
    it waits for is done: a follower waiting that way would outlive stop() for good."""
    announcer = make_announcer(store, FakeEdge(), live_rooms(ROOM))
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


async def test_changes_handed_over_out_of_order_are_said_in_order(store: Store) -> None:
    """Two commands here hand over their changes as they come back, the later one first:
    the later waits for the earlier, and both are said in audit order with no read."""
    addins.register(store, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    recorder = FakeEdge()
    announcer = make_announcer(store, recorder, live_rooms(ROOM, f"ops@{POOL}"))
    await announcer.start()
    try:
        first = addins.attach(store, ADMIN, room=ROOM, name="Stock")
        second = addins.attach(store, ADMIN, room=f"ops@{POOL}", name="Stock")
        announcer.handed(second.changes)
        announcer.poke()
        assert recorder.in_rooms() == []  # not before the earlier change ...
        assert announcer._wake.is_set()  # ... which the follower would read, if need be
        announcer.handed(first.changes)
        announcer.poke()
        assert [room for room, _text, _link in recorder.in_rooms()] == [ROOM, f"ops@{POOL}"]
        await announcer.catch_up()  # the follower finds nothing more
    finally:
        await announcer.stop()
    assert [room for room, _text, _link in recorder.in_rooms()] == [ROOM, f"ops@{POOL}"]


def entry(store: Store, audit_id: int) -> AuditEntry:
    return next(c for c in addins.changes_since(store, audit_id - 1) if c.id == audit_id)
