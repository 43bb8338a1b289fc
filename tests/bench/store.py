"""Part 4, the store at scale: the add-in operations (bot.addins, what chat and the command
line call) on a database holding many add-ins and rooms, on SQLite and on PostgreSQL.

Each operation is timed on its own, in this process, ``samples`` times with random
arguments (a fixed seed): ``list`` page 1 and a middle page, ``show``, ``attach``, and for
reference the reads and writes behind ``!addin`` and a joiner's announcement.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Engine, insert, select
from sqlalchemy.engine import make_url

from bot import addins, names
from bot.errors import CommandError
from bot.values import Actor
from store import Store
from store.database import make_engine
from store.migrate import upgrade
from store.models import Addin, Pool, Room

POOL = "conference.example.org"
ACTOR = Actor("bench@example.org", "dm")
CHUNK = 10_000
OPERATIONS = (
    ("list_first", "`list` page 1"),
    ("list_middle", "`list` middle page"),
    ("show", "`show`"),
    ("attach", "`attach`"),
    ("room_info", "`!addin` (room_info)"),
    ("claim", "joiner announcement (claim_announcement)"),
)
TARGETED = ("list_first", "list_middle", "show", "attach")


@contextmanager
def sqlite_engine(folder: Path) -> Iterator[Engine]:
    path = folder / "store-scale.db"
    path.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def postgres_engine(server_url: str) -> Iterator[Engine]:
    """A database of the benchmark's own on that server, dropped afterwards."""
    url = make_url(server_url)
    name = f"addinbot_bench_{secrets.token_hex(4)}"
    admin = sqlalchemy.create_engine(
        url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = make_engine(url.set(database=name).render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def addin_name(index: int) -> str:
    return f"Add-in {index:05d}"


def room_jid(index: int) -> str:
    return f"room{index:06d}@{POOL}"


def populate(engine: Engine, n_addins: int, n_rooms: int) -> float:
    """Migrate, then bulk-insert the add-ins and rooms; each add-in is used by ~n_rooms /
    n_addins rooms, one room in ten has none, one in a hundred is served. Returns seconds."""
    started = time.monotonic()
    upgrade(engine)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        pool_id = connection.execute(
            insert(Pool).values(name=POOL, addin_count=n_addins)  # as register keeps it
        ).inserted_primary_key[0]
        rows = [
            {"pool_id": pool_id, "name": addin_name(i), "name_key": names.name_key(addin_name(i)),
             "name_skeleton": names.name_skeleton(addin_name(i)),
             "url": f"https://addins.example.org/{i}/panel", "created_by": "admin@example.org",
             "created_at": now, "revision": 1}
            for i in range(n_addins)
        ]
        for start in range(0, len(rows), CHUNK):
            connection.execute(insert(Addin), rows[start:start + CHUNK])
        ids = list(connection.execute(select(Addin.id).order_by(Addin.id)).scalars())
        for start in range(0, n_rooms, CHUNK):
            connection.execute(insert(Room), [
                {"jid": room_jid(i), "pool_id": pool_id,
                 "addin_id": None if i % 10 == 9 else ids[i % n_addins],
                 "joined": i % 100 == 0, "attached_at": now}
                for i in range(start, min(n_rooms, start + CHUNK))
            ])
    if engine.dialect.name == "postgresql":  # what autovacuum would have done by now
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
    return time.monotonic() - started


def operations(
    engine: Engine, n_addins: int, n_rooms: int, seed: int = 7
) -> dict[str, Callable[[], Any]]:
    store = Store(engine)  # the handle the bot holds, over the store populated
    rng = random.Random(seed)
    pages = -(-n_addins // addins.PAGE_SIZE)
    people = iter(range(10**9))

    def attach() -> Any:
        while True:
            try:
                return addins.attach(
                    store, ACTOR, room=room_jid(rng.randrange(n_rooms)),
                    name=addin_name(rng.randrange(n_addins)),
                )
            except CommandError:  # it already had that one: draw again
                continue

    return {
        "list_first": lambda: addins.list_addins(store, pool=POOL, page=1),
        "list_middle": lambda: addins.list_addins(store, pool=POOL, page=pages // 2),
        "show": lambda: addins.show(store, pool=POOL, name=addin_name(rng.randrange(n_addins))),
        "attach": attach,
        "room_info": lambda: addins.room_info(store, room_jid(rng.randrange(n_rooms))),
        "claim": lambda: addins.claim_announcement(
            store, room=room_jid(rng.randrange(n_rooms) // 10 * 10),
            person=f"jid:p{next(people)}@example.org", cooldown_s=86400,
        ),
    }


def measure(engine: Engine, n_addins: int, n_rooms: int, samples: int) -> dict[str, Any]:
    populated_s = populate(engine, n_addins, n_rooms)
    ops = operations(engine, n_addins, n_rooms)
    times: dict[str, list[float]] = {}
    for key, _ in OPERATIONS:
        call = ops[key]
        for _ in range(max(5, samples // 10)):  # warm the caches and the pool
            call()
        taken = []
        for _ in range(samples):
            started = time.perf_counter()
            call()
            taken.append((time.perf_counter() - started) * 1000)
        times[key] = taken
    return {"populate_s": populated_s, "samples_ms": times}


def run(
    folder: Path, n_addins: int, n_rooms: int, samples: int, pg_url: str | None
) -> dict[str, Any]:
    results: dict[str, Any] = {"addins": n_addins, "rooms": n_rooms, "backends": {}}
    with sqlite_engine(folder) as engine:
        results["backends"]["sqlite"] = measure(engine, n_addins, n_rooms, samples)
    if pg_url:
        try:
            with postgres_engine(pg_url) as engine:
                results["backends"]["postgresql"] = measure(engine, n_addins, n_rooms, samples)
        except sqlalchemy.exc.OperationalError as exc:  # no server there: say so, keep the rest
            results["postgresql_error"] = str(exc.orig).strip()
    return results
