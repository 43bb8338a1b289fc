"""store.leases on PostgreSQL: each room held by one live process, fair shares that settle
and stay, rooms of a dead process taken over (not "fresh"), a clean stop giving all back;
bot.cluster: a process that cannot renew stops serving in time, one cut from XMPP at once.

Time passing is staged by writing the leases' expiry into the past (the database's clock
decides), never by sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest

from bot.cluster import SETTLE_S, Cluster
from bot.config import ClusterSettings, Settings
from store import Store, leases
from tests.conftest import SettingsFactory

pytestmark = pytest.mark.postgres

ROOMS = [f"r{i}@conference.example.org" for i in range(10)]
LEASE_S = 60.0


LEAVING: dict[str, frozenset[str]] = {}  # each process's rooms to leave, passed back as left


@pytest.fixture
def db(postgres_store: Store) -> Iterator[Store]:
    with postgres_store.engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE lease")
    LEAVING.clear()
    return postgres_store


def beat(
    db: Store, me: str, rooms: list[str] = ROOMS, *, serving: bool = True, take: bool = True
) -> leases.Held:
    """One tick of process `me`, which left what the last one told it to leave."""
    held = leases.tick(db, me=me, lease_s=LEASE_S, served=rooms, pools=(), serving=serving,
                       left=LEAVING.pop(me, frozenset()), take=take)
    LEAVING[me] = held.leaving
    return held


def rounds(db: Store, processes: list[str], n: int = 5) -> dict[str, leases.Held]:
    held = {}
    for _ in range(n):
        for me in processes:
            held[me] = beat(db, me)
    return held


def run_out(db: Store, holder: str) -> None:
    """`holder` stopped renewing long ago (it was killed)."""
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            "UPDATE lease SET expires = now() - interval '1 hour' WHERE holder = %(h)s "
            "OR (kind = 'process' AND key = %(h)s)", {"h": holder},
        )


def assert_each_room_once(held: dict[str, leases.Held], rooms: list[str] = ROOMS) -> None:
    counts = Counter(room for h in held.values() for room in h.rooms)
    assert set(counts) == set(rooms)
    assert set(counts.values()) == {1}
    assert sum(h.desk for h in held.values()) == 1


def test_three_processes_share_the_rooms_fairly_and_settle(db: Store) -> None:
    first = beat(db, "a")
    assert first.rooms == set(ROOMS)
    assert first.fresh == set(ROOMS)
    assert first.desk
    held = rounds(db, ["a", "b", "c"])
    assert_each_room_once(held)
    assert sorted(len(h.rooms) for h in held.values()) == [3, 3, 4]
    assert all(h.processes == 3 for h in held.values())
    # Settled: more rounds move nothing.
    again = rounds(db, ["a", "b", "c"], n=2)
    assert {me: h.rooms for me, h in again.items()} == {me: h.rooms for me, h in held.items()}
    assert leases.holders(db) == {room: me for me, h in held.items() for room in h.rooms}


def test_a_room_given_up_is_not_taken_before_its_holder_is_out_of_it(db: Store) -> None:
    assert len(beat(db, "a").rooms) == len(ROOMS)
    assert beat(db, "b").rooms == set()  # all held by a
    a = beat(db, "a")  # b is short: a gives half up, still leased while it leaves them
    assert len(a.leaving) == len(ROOMS) // 2
    assert a.rooms == set(ROOMS) - a.leaving
    assert beat(db, "b").rooms == set()  # not before a is out of them
    assert beat(db, "a").rooms == a.rooms  # a left them: freed
    b = beat(db, "b")
    assert b.rooms == a.leaving
    assert not b.fresh  # served before


def test_a_dead_process_s_rooms_are_taken_over_and_it_gets_its_share_back(db: Store) -> None:
    held = rounds(db, ["a", "b", "c"])
    lost = held["a"].rooms
    run_out(db, "a")
    after = rounds(db, ["b", "c"], n=2)
    assert_each_room_once(after)
    taken = (after["b"].rooms | after["c"].rooms) & lost
    assert taken == lost
    assert not (after["b"].fresh | after["c"].fresh) & lost  # served before: taken over
    # a comes back: it reaches a fair share within a few rounds, and then nothing moves.
    back = rounds(db, ["a", "b", "c"])
    assert_each_room_once(back)
    assert sorted(len(h.rooms) for h in back.values()) == [3, 3, 4]
    assert rounds(db, ["a", "b", "c"], n=2) == back


def test_a_process_whose_xmpp_session_ended_loses_its_leases_at_once(db: Store) -> None:
    rounds(db, ["a", "b"])
    after = leases.tick(db, me="b", lease_s=LEASE_S, served=ROOMS, pools=(), ended=["a", "b"])
    assert after.rooms == set(ROOMS)  # a's unexpired leases freed, b's own untouched
    assert after.desk
    assert after.processes == 1
    assert not after.fresh  # taken over


def test_a_process_that_cannot_serve_gives_everything_up(db: Store) -> None:
    held = rounds(db, ["a", "b"])
    desk_was = "a" if held["a"].desk else "b"
    gone = beat(db, desk_was, serving=False)
    assert gone.rooms == set()
    assert not gone.desk
    other = "b" if desk_was == "a" else "a"
    took = beat(db, other)
    assert took.rooms == set(ROOMS)
    assert took.desk
    assert took.processes == 1


def test_a_clean_stop_and_a_room_no_longer_served(db: Store) -> None:
    rounds(db, ["a", "b"])
    leases.release(db, me="a")
    b = beat(db, "b", ROOMS[:-1])
    assert b.rooms == set(ROOMS[:-1])
    assert b.desk
    assert ROOMS[-1] not in leases.holders(db)


# --- bot.cluster: the process side ----------------------------------------------------------


class Served:
    """What a Cluster told its process to serve, as it happens."""

    def __init__(self) -> None:
        self.now: frozenset[str] = frozenset()
        self.changed = asyncio.Event()
        self.desk = False

    def serve(self, rooms: frozenset[str], _fresh: frozenset[str], _since: int) -> None:
        if rooms != self.now:
            self.now = rooms
            self.changed.set()

    def on_desk(self, desk: bool) -> None:
        self.desk = desk

    async def becomes(self, rooms: set[str], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while self.now != rooms:
                self.changed.clear()
                await self.changed.wait()


def shared_settings(settings: SettingsFactory, db: Store) -> Settings:
    return settings(
        store={"url": db.url}, rooms={"autojoin": ROOMS[:3]},
        pools={"names": ["conference.example.org"]},
        cluster={"enabled": True, "lease_s": 1.0, "renew_s": 0.25},
    )


@contextlib.asynccontextmanager
async def serving(settings: SettingsFactory, db: Store) -> AsyncIterator[tuple[Cluster, Served]]:
    """Process "a" on the leases, alone: serving the three autojoin rooms, and the desk."""
    served = Served()
    cluster = Cluster(shared_settings(settings, db), db, me="a", serve=served.serve,
                      on_desk=served.on_desk)
    cluster.set_online(True)
    await cluster.start()
    try:
        await served.becomes(set(ROOMS[:3]))
        assert served.desk
        yield cluster, served
    finally:
        await cluster.stop()


async def test_a_process_that_cannot_renew_stops_serving_before_its_leases_run_out(
    db: Store, settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    answering = threading.Event()
    async with serving(settings, db) as (_cluster, served):
        # The database stops answering: every renewal hangs.
        real_tick = leases.tick

        def hung(*args: object, **kwargs: object) -> leases.Held:
            answering.wait(10)
            return real_tick(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(leases, "tick", hung)
        loop = asyncio.get_running_loop()
        since = loop.time()
        await served.becomes(set())
        stopped_after = loop.time() - since
        assert not served.desk
        # Within lease_s - renew_s of the last renewal asked for: before anyone may take over.
        assert stopped_after < 1.0
        assert leases.holders(db) == dict.fromkeys(ROOMS[:3], "a")  # the database still says a
        monkeypatch.setattr(leases, "tick", real_tick)
        answering.set()
        await served.becomes(set(ROOMS[:3]))  # the database is back: so is the process
    assert leases.holders(db) == {}  # a clean stop gives every lease back


async def test_a_process_cut_from_xmpp_gives_its_rooms_up_at_once(
    db: Store, settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    released = threading.Event()
    real_tick = leases.tick

    def watched(*args: object, **kwargs: object) -> leases.Held:
        held = real_tick(*args, **kwargs)  # type: ignore[arg-type]
        if kwargs.get("serving") is False:
            released.set()
        return held

    monkeypatch.setattr(leases, "tick", watched)
    async with serving(settings, db) as (cluster, served):
        cluster.set_online(False)
        assert served.now == frozenset()
        assert not served.desk
        assert await asyncio.to_thread(released.wait, 5)  # the beat, poked at once
        assert leases.holders(db) == {}
        other = beat(db, "b", ROOMS[:3])
        assert other.rooms == set(ROOMS[:3])
        assert other.desk


def test_several_processes_need_postgresql_and_a_renewal_within_half_a_lease(
    settings: SettingsFactory,
) -> None:
    assert ClusterSettings(enabled=True).problems("sqlite:///x.db") == [
        "config: cluster.enabled: several processes share only a PostgreSQL database "
        "(store.url is not postgresql+psycopg://…)"
    ]
    assert ClusterSettings(enabled=True, lease_s=4, renew_s=3).problems(
        "postgresql+psycopg://h/db"
    ) == ["config: cluster.renew_s: 3 must be at most half of cluster.lease_s (4)"]
    assert ClusterSettings(enabled=False).problems("sqlite:///x.db") == []


def test_twenty_thousand_rooms_are_taken_a_share_a_beat_and_let_go_at_once(
    db: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL takes at most 65,535 parameters a statement (one INSERT of 16,384 rooms and
    more failed, and nobody served): a beat takes at most TAKE_MOST rooms (5,000 here, for a
    test of 4 beats), renews what it holds without listing it, and lets go of rooms no longer
    served a chunk at a time."""
    monkeypatch.setattr(leases, "TAKE_MOST", 5_000)  # 4 beats (the real 1,000: 20)
    rooms = [f"c{i:05d}@conference.example.org" for i in range(20_000)]  # the benchmark's
    held = frozenset[str]()
    for _ in range(len(rooms) // leases.TAKE_MOST):
        before, held = held, beat(db, "a", rooms).rooms
        assert before < held
        assert len(held - before) == leases.TAKE_MOST
    assert held == set(rooms)
    assert beat(db, "a", rooms).rooms == held  # all renewed
    assert beat(db, "a", []).rooms == frozenset()  # none served any more: all let go
    assert leases.holders(db) == {}


def test_processes_started_together_take_their_shares_without_handing_rooms_back(
    db: Store,
) -> None:
    """A process's first beat only says it is there: processes started within a beat of
    each other each take their share at their second, and nobody hands a room back (it
    did: the first to tick took every room, 400 rooms cost 700 joins)."""
    rooms = [f"s{i:03d}@conference.example.org" for i in range(400)]
    for me in ("a", "b", "c", "d"):
        first = beat(db, me, rooms, take=False)
        assert (first.rooms, first.desk) == (frozenset(), False)
    held = {me: beat(db, me, rooms) for me in ("a", "b", "c", "d")}
    assert sorted(len(h.rooms) for h in held.values()) == [100, 100, 100, 100]
    assert all(not h.leaving for h in held.values())
    assert set().union(*(h.rooms for h in held.values())) == set(rooms)
    assert sum(h.desk for h in held.values()) == 1


def test_a_room_given_up_for_a_short_process_is_not_taken_back(db: Store) -> None:
    """3 rooms, 2 processes: one that took all three before the other came gives one up;
    at its next beat that room is free (the short process will take it), so it gives no
    second one. It did: it gave a second room, the short one took the first and was short
    no more, and the giver took the second back — a leave and a join for nothing, and the
    room unserved meanwhile (seen with two `addinbot run` started together)."""
    rooms = ROOMS[:3]
    assert beat(db, "a", rooms).rooms == set(rooms)
    beat(db, "b", rooms, take=False)  # b says it is there
    history: dict[str, list[frozenset[str]]] = {"a": [], "b": []}
    for _ in range(5):
        for me in ("a", "b"):
            held = beat(db, me, rooms)
            history[me].append(held.rooms)
    for earlier, later in itertools.pairwise(history["a"]):
        assert later <= earlier, "a took a room back"
    for earlier, later in itertools.pairwise(history["b"]):
        assert earlier <= later, "b lost a room"
    assert sorted([len(history["a"][-1]), len(history["b"][-1])]) == [1, 2]
    assert not history["a"][-1] & history["b"][-1]


async def test_after_saying_it_is_there_a_process_waits_to_settle_however_poked(
    db: Store, settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its stream coming up and its own joins poke the beat; right after the beat that only
    says the process is there, such a poke had it take every room before a process started
    with it had said so too (then hand most back: a leave and a join each)."""
    loop = asyncio.get_running_loop()
    calls: list[tuple[float, bool]] = []
    took = asyncio.Event()
    real_tick = leases.tick

    def recorded(*args: object, **kwargs: object) -> leases.Held:
        held = real_tick(*args, **kwargs)  # type: ignore[arg-type]
        if kwargs.get("serving"):
            calls.append((loop.time(), bool(kwargs.get("take"))))
            if kwargs.get("take"):
                loop.call_soon_threadsafe(took.set)
        return held

    monkeypatch.setattr(leases, "tick", recorded)
    cluster_settings = shared_settings(settings, db)
    served = Served()
    cluster = Cluster(cluster_settings, db, me="a", serve=served.serve, on_desk=served.on_desk)
    cluster.set_online(True)
    await cluster.start()
    try:
        async with asyncio.timeout(5):
            while not calls:  # poked until the beat that says it is there
                cluster.poke()
                await asyncio.sleep(0.01)
        for _ in range(10):
            cluster.poke()
            await asyncio.sleep(0.01)
        await asyncio.wait_for(took.wait(), 5)
        [(said, _), (taken, take)] = calls[:2]
        assert (calls[0][1], take) == (False, True)
        settle = min(cluster_settings.cluster.renew_s, SETTLE_S)
        assert taken - said >= settle * 0.9
    finally:
        await cluster.stop()


async def test_coming_online_again_or_during_a_beat_a_process_says_it_is_there_first(
    db: Store, settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first beat that serves, whenever the stream comes up (even while the beat before
    it was running), and again after the stream was down (all processes come back together
    after a server restart), only says the process is there. It took every room at once
    when the stream came up during its first beat: two processes started together handed a
    room back and forth in two cold starts of three."""
    loop = asyncio.get_running_loop()
    calls: list[tuple[bool, bool]] = []  # (serving, take) of each tick
    cluster: Cluster | None = None
    real_tick = leases.tick

    gone = asyncio.Event()  # a tick said the process is gone (not serving)

    def recorded(*args: object, **kwargs: object) -> leases.Held:
        held = real_tick(*args, **kwargs)  # type: ignore[arg-type]
        calls.append((bool(kwargs.get("serving")), bool(kwargs.get("take"))))
        if len(calls) == 1:  # the stream comes up while the first beat runs
            assert cluster is not None
            loop.call_soon_threadsafe(cluster.set_online, True)
        elif not kwargs.get("serving"):
            loop.call_soon_threadsafe(gone.set)
        return held

    monkeypatch.setattr(leases, "tick", recorded)
    served = Served()
    cluster = Cluster(shared_settings(settings, db), db, me="a", serve=served.serve,
                      on_desk=served.on_desk)
    await cluster.start()
    try:
        await served.becomes(set(ROOMS[:3]))
        serving = [take for on, take in calls if on]
        assert serving[:2] == [False, True]
        before = len(calls)
        cluster.set_online(False)
        await asyncio.wait_for(gone.wait(), 5)
        assert served.now == frozenset()
        before = len(calls)
        cluster.set_online(True)
        await served.becomes(set(ROOMS[:3]))
        again = [take for on, take in calls[before:] if on]
        assert again[:2] == [False, True]
    finally:
        await cluster.stop()


async def test_rooms_given_up_are_freed_at_once_not_a_beat_later(
    db: Store, settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process that gives rooms up to a newcomer leaves them (serve) and frees them in a
    beat right after, rather than at its next regular one: the newcomer takes them at its own
    next beat, and the rooms go unserved for one beat at most, not two (5.6 s was seen with
    the default 3 s beat)."""
    loop = asyncio.get_running_loop()
    ticks: list[tuple[float, frozenset[str], frozenset[str]]] = []  # when, left, leaving
    freed = asyncio.Event()
    real_tick = leases.tick

    def recorded(*args: object, **kwargs: object) -> leases.Held:
        held = real_tick(*args, **kwargs)  # type: ignore[arg-type]
        left = frozenset(kwargs.get("left") or ())  # type: ignore[call-overload]
        ticks.append((loop.time(), left, held.leaving))
        if left:
            loop.call_soon_threadsafe(freed.set)
        return held

    monkeypatch.setattr(leases, "tick", recorded)
    slow = settings(
        store={"url": db.url}, rooms={"autojoin": ROOMS[:3]},
        pools={"names": ["conference.example.org"]},
        cluster={"enabled": True, "lease_s": 30.0, "renew_s": 10.0},
    )
    served = Served()
    cluster = Cluster(slow, db, me="a", serve=served.serve, on_desk=served.on_desk)
    cluster.set_online(True)
    await cluster.start()
    try:
        await served.becomes(set(ROOMS[:3]), timeout=15)  # after its 1 s settle
        beat(db, "b", ROOMS[:3], take=False)  # a newcomer says it is there
        cluster.poke()  # (as its next beat would, 10 s on)
        await asyncio.wait_for(freed.wait(), 5)
        gave = next(when for when, _left, leaving in ticks if leaving)
        freed_at = next(when for when, left, _leaving in ticks if left)
        assert freed_at - gave < 5.0  # not the 10 s beat
        assert beat(db, "b", ROOMS[:3]).rooms  # the newcomer takes them at once
    finally:
        await cluster.stop()
