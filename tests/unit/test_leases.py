"""store.leases on PostgreSQL: each room held by one live process, fair shares that settle
and stay, rooms of a dead process taken over (not "fresh"), a clean stop giving all back.

Time passing is staged by writing the leases' expiry into the past (the database's clock
decides), never by sleeping."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from store import Store, leases

pytestmark = pytest.mark.postgres

ROOMS = [f"r{i}@conference.example.org" for i in range(10)]
LEASE_S = 60.0


@pytest.fixture
def db(postgres_store: Store) -> Iterator[Store]:
    with postgres_store.engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE lease")
    return postgres_store


def beat(db: Store, me: str, rooms: list[str] = ROOMS, *, serving: bool = True) -> leases.Held:
    return leases.tick(db, me=me, lease_s=LEASE_S, served=rooms, pools=(), serving=serving)


def rounds(db: Store, processes: list[str], n: int = 3) -> dict[str, leases.Held]:
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
