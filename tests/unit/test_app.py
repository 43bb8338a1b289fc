"""The bot between edge and store, with the fake edge: joining what it serves."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

from sqlmodel import Session

from bot import addins
from bot.app import App
from bot.values import Actor, Change, Kind, Message, Presence
from store import Store
from store.models import Pool, Room
from tests.fakes import FakeEdge

POOL = "conference.localhost"


async def test_one_unjoinable_remembered_room_does_not_stop_the_others(
    store: Store, settings
) -> None:
    bad = f"a<b@{POOL}"  # stored before room addresses were checked
    with Session(store.engine) as session:
        pool = Pool(name=POOL)
        session.add(pool)
        session.flush()
        assert pool.id is not None
        session.add(Room(jid=bad, pool_id=pool.id, joined=True))
        session.commit()
    for name in ("alpha", "zulu"):
        addins.set_joined(store, Actor("admin@localhost", "dm"), room=f"{name}@{POOL}",
                          joined=True)
    transport = FakeEdge(refuse={bad})
    app = App(settings(), store, transport)
    await app.start()
    try:
        app.on_online()
        for _ in range(200):
            if len(transport.joined) == 2 and any(
                e.action == "stop" for e in addins.audit(store, limit=5)
            ):
                break
            await asyncio.sleep(0.01)
        assert transport.joined == [f"alpha@{POOL}", f"zulu@{POOL}"]
        stop = [e for e in addins.audit(store, limit=5) if e.action == "stop"]
        assert [(e.room, e.detail) for e in stop] == [
            (bad, "cannot join: not a valid room address")
        ]
    finally:
        await app.stop()


async def test_a_commands_changes_reach_the_announcer_on_the_loop_thread(
    store: Store, settings
) -> None:
    """The operation runs on a worker thread and returns its changes; the app hands them to
    the announcer back on the loop, which says them with no read of the audit log."""
    admin = Actor("admin@localhost", "dm")
    addins.register(store, admin, pool=POOL, name="Stock", url="https://a.example.org/")
    room = f"dev@{POOL}"
    transport = FakeEdge()
    app = App(settings(), store, transport)
    await app.start()
    handed: list[tuple[int, tuple[Change, ...]]] = []
    hand = app.announcer.handed
    app.announcer.handed = lambda changes: (  # type: ignore[method-assign]
        handed.append((threading.get_ident(), tuple(changes))), hand(changes))[1]
    read = addins.changes_to_announce
    reads: list[int] = []
    addins.changes_to_announce = lambda *a, **k: reads.append(1) or read(*a, **k)  # type: ignore[assignment]
    try:
        app.rooms.joining(room, "AddinBot")
        app.on_presence(Presence(room, "AddinBot", True, codes=frozenset({110})))
        app.on_message(Message(Kind.DIRECT, f"attach {room} Stock", jid="admin@localhost"))
        said = await transport.take("room")
    finally:
        addins.changes_to_announce = read  # type: ignore[assignment]
        await app.stop()
    [(thread, changes)] = [(t, c) for t, c in handed if c]
    assert thread == threading.get_ident()  # the loop's thread
    assert [c.entry.action for c in changes] == ["attach"]
    assert (said.to, said.text) == (room, "This room's add-in is now “Stock”: https://a.example.org/")
    assert transport.in_rooms() == []  # said once
    assert reads == []


async def test_join_asks_the_room_whether_it_exists_once(store: Store, settings) -> None:
    """`join` asks the room (disco#info) before it says yes; the join that follows need not
    ask again (it did: two disco#info for one `join`)."""
    room = f"dev@{POOL}"
    transport = FakeEdge()
    app = App(settings(), store, transport)
    await app.start()
    try:
        app.on_online()
        app.on_message(Message(Kind.DIRECT, f"join {room}", jid="admin@localhost"))
        said = await transport.take("direct")
        assert said.text.startswith(f"Joining {room}")
        for _ in range(200):
            if transport.joined:
                break
            await asyncio.sleep(0.01)
        assert transport.joined == [room]
        assert transport.asked == [room]
    finally:
        await app.stop()


@contextlib.asynccontextmanager
async def online_in(
    store: Store, settings, rooms: list[str]
) -> AsyncIterator[tuple[App, FakeEdge]]:
    """An app whose store remembers `rooms`, online, once it has sent their joins."""
    for room in rooms:
        addins.set_joined(store, Actor("admin@localhost", "dm"), room=room, joined=True)
    transport = FakeEdge()
    app = App(settings(), store, transport)
    await app.start()
    try:
        app.on_online()
        await transport.until(lambda: len(transport.joined) == len(rooms))
        yield app, transport
    finally:
        await app.stop()


async def test_remembered_rooms_are_joined_at_start_without_a_question_first(
    store: Store, settings
) -> None:
    """At start-up the bot joins the rooms it serves at once: a disco#info to each first
    (as it once did) doubled the server's work and the start-up time. Nor is a room's
    configuration asked after the join: only when the subject pin needs it, where the bot
    is no moderator, once until the room says its configuration changed (status 104)."""
    rooms = [f"r{n}@{POOL}" for n in range(3)]
    async with online_in(store, settings, rooms) as (app, transport):
        assert sorted(transport.joined) == rooms
        for room in rooms:
            role = "moderator" if room == rooms[0] else "participant"
            app.on_presence(Presence(room, "AddinBot", True, role=role, codes=frozenset({110})))
        for _ in range(10):  # let whatever the joins scheduled run
            await asyncio.sleep(0)
        assert transport.asked == []

        await app.learn_config(rooms[0])  # a moderator may change the subject anyway
        await app.learn_config(rooms[1])
        app.on_room_config(rooms[1], True)  # (the edge hands over the answer)
        await app.learn_config(rooms[1])  # known: not asked again
        assert transport.asked == [rooms[1]]
        app.on_room_status(rooms[1], frozenset({104}))
        await app.learn_config(rooms[1])
        assert transport.asked == [rooms[1], rooms[1]]


async def test_a_room_the_bots_join_created_is_destroyed_and_asked_about_next_time(
    store: Store, settings
) -> None:
    """A remembered room that no longer exists: the bot's join creates it (status 201), the
    bot destroys it at once, and the next try asks first (and does not join it again)."""
    room = f"gone@{POOL}"
    async with online_in(store, settings, [room]) as (app, transport):
        assert transport.joined == [room]
        app.on_presence(Presence(room, "AddinBot", True, affiliation="owner", role="moderator",
                                 codes=frozenset({110, 201})))
        await transport.until(lambda: transport.destroyed == [room])
        assert not app.rooms.is_live(room)
        assert app.rooms.state(room) is None  # what the room says next is not heard
        assert room in app.membership.absent
        app.membership.join(room)  # the next try (its timer, sooner)
        await transport.until(lambda: transport.asked == [room])
        assert transport.joined == [room]  # asked, found missing: not joined again
        assert [e.action for e in addins.audit(store, limit=5) if e.action == "stop"] == []
