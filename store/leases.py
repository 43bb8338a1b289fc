"""Leases: how several processes on one PostgreSQL database share the rooms (bot.cluster).

Each process calls `tick` every few seconds, on a store thread. One tick is one transaction,
and ticks take turns (a transaction-scoped advisory lock), so each sees every lease as the
last tick left it. Expiry is the database's clock (now(): the transaction's start), never a
process's. In one tick a process:

- says it is alive (its "process" lease) and forgets processes dead for good, or whose XMPP
  session the server ended (their rooms are free at once);
- renews the leases it holds (rooms and the desk);
- frees the rooms it has left since its last tick (`left`), and rooms no longer served;
- picks the rooms beyond its fair share to give up: it keeps their leases, leaves them, and
  frees them at its next tick — so no other process joins a room before this one is out;
- takes free rooms (no lease, released, or expired) up to its share, and the desk if free.

The share: with S rooms served and n live processes, at most ceil(S/n) each; while some
process holds fewer than floor(S/n), those holding more than floor(S/n) give up their part
of the difference and take nothing. Rooms move only towards a process that is short, so
nobody's holdings go up and down again (no flapping); a process that comes back reaches its
share within a few ticks.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from store.handle import Store
from store.models import AuditEvent, Lease, Room

TICK_LOCK = 0x61646C73  # "adls": ticks take turns
CHUNK = 10_000  # parameters a statement, at most (PostgreSQL's limit is 65,535)
# Free rooms a process takes in one beat, at most: a share of thousands is taken over a few
# beats, so that no tick holds the lock (and the others' renewals) for long, and the joins
# come in batches the server and the event loop can answer between two renewals.
TAKE_MOST = 1000
ROOM, DESK, PROCESS = "room", "desk", "process"
_LOCK = text(f"SELECT pg_advisory_xact_lock({TICK_LOCK})")


@dataclass(frozen=True)
class Held:
    """What a process holds after a tick."""

    rooms: frozenset[str]  # to serve
    fresh: frozenset[str]  # taken now, never served before (no one had a lease on them)
    desk: bool
    processes: int  # live processes, this one included
    leaving: frozenset[str] = frozenset()  # still leased: leave them, then pass them as `left`
    since: int = 0  # the last change (audit id) committed before the rooms were taken now


def tick(
    store: Store, *, me: str, lease_s: float, served: Iterable[str], pools: Iterable[str],
    serving: bool = True, ended: Iterable[str] = (), left: Iterable[str] = (),
    take: bool = True,
) -> Held:
    """One heartbeat of process `me` (blocking; PostgreSQL). `served`: rooms served whatever
    the database says (rooms.autojoin); besides them, the remembered rooms of `pools`.
    `serving`: False while the process cannot serve (no XMPP): it gives everything up.
    `take`: False for a process's first beat: it only says it is there, so that processes
    started together each take their share at their next beat (rather than the first to
    tick taking every room and handing most back: a join and a leave each).
    `ended`: processes whose XMPP session the server has ended (out of every room): their
    leases are freed now. `left`: rooms this process was told to leave (`Held.leaving`) and
    has left since."""
    with store.engine.begin() as rows:
        rows.execute(_LOCK)
        now: datetime = rows.execute(select(func.now())).scalar_one()
        until = now + timedelta(seconds=lease_s)
        if not serving:
            _release(rows, me, now, None)
            rows.execute(delete(Lease).where(col(Lease.kind) == PROCESS, col(Lease.key) == me))
            return Held(frozenset(), frozenset(), False, 0)
        rows.execute(
            delete(Lease).where(col(Lease.kind) == PROCESS, col(Lease.expires) <= now)
        )
        _release(rows, me, now, set(left))
        out = sorted(set(ended) - {me})
        if out:
            rows.execute(update(Lease).where(
                col(Lease.holder).in_(out), col(Lease.kind).in_((ROOM, DESK))
            ).values(holder=None, expires=now))
            rows.execute(
                delete(Lease).where(col(Lease.kind) == PROCESS, col(Lease.key).in_(out))
            )
        _upsert(rows, PROCESS, [me], me, until, now, take_any=True)
        if not take:
            return Held(frozenset(), frozenset(), False, 0)
        processes = set(rows.execute(
            select(col(Lease.key)).where(col(Lease.kind) == PROCESS)
        ).scalars())
        wanted = _served(rows, served, pools)
        leases = rows.execute(
            select(col(Lease.kind), col(Lease.key), col(Lease.holder), col(Lease.expires))
            .where(col(Lease.kind).in_((ROOM, DESK)))
        ).all()
        live = {(kind, key): holder for kind, key, holder, expires in leases
                if holder is not None and expires > now}
        known = {key for kind, key, _, _ in leases if kind == ROOM}
        mine = {key for (kind, key), holder in live.items() if kind == ROOM and holder == me}
        # Rooms no longer served: given up, and their rows gone once free.
        gone = mine - wanted
        mine -= gone
        for keys in _chunks(sorted(known - wanted)):
            rows.execute(delete(Lease).where(
                col(Lease.kind) == ROOM, col(Lease.key).in_(keys),
                or_(col(Lease.holder).is_(None), col(Lease.expires) <= now,
                    col(Lease.holder) == me),
            ))
        # The share.
        counts = dict.fromkeys(processes, 0)
        for (kind, _key), holder in live.items():
            if kind == ROOM and holder in counts and _key in wanted:
                counts[holder] += 1
        n = len(processes)
        floor, ceil = len(wanted) // n, math.ceil(len(wanted) / n)
        short = sum(floor - count for holder, count in counts.items()
                    if holder != me and count < floor)
        givers = sum(1 for holder, count in counts.items() if holder != me and count > floor)
        # Free rooms go to the short processes first (below): only what they cannot cover
        # is given up, or a room given up a beat ago, now free, would be followed by a
        # second, which this process would take back once the first made up the shortfall.
        unfree = max(0, short - sum(1 for room in wanted if (ROOM, room) not in live))
        if len(mine) > ceil:
            give = len(mine) - ceil
        elif unfree and len(mine) > floor:
            give = min(len(mine) - floor, math.ceil(unfree / (givers + 1)))
        else:
            give = 0
        given = set(sorted(mine, key=lambda room: _order(me, room))[len(mine) - give:])
        mine -= given
        rows.execute(  # all it holds (`mine` and `given`: given up rooms are freed once
            update(Lease)  # this process is out of them); those no longer served are gone
            .where(col(Lease.holder) == me, col(Lease.kind) == ROOM, col(Lease.expires) > now)
            .values(expires=until)
        )
        # Take free rooms up to the share (only floor while another process is short).
        limit = floor if short else ceil
        free = [room for room in wanted - mine if (ROOM, room) not in live]
        free.sort(key=lambda room: _order(me, room))
        want = free[:min(TAKE_MOST, max(0, limit - len(mine)))]
        taken = _upsert(rows, ROOM, want, me, until, now)
        mine |= taken
        # The desk.
        desk = bool(_upsert(rows, DESK, [""], me, until, now))
        # Changes up to here were for the rooms' earlier holders to announce (or, made while
        # nobody served them, are told to those present when the room is taken over).
        since = rows.execute(select(func.max(col(AuditEvent.id)))).scalar_one() or 0
        return Held(frozenset(mine), frozenset(taken - known), desk, n, frozenset(given), since)


def release(store: Store, *, me: str) -> None:
    """Give up every lease of process `me` at once (a clean stop): others take them at
    their next tick rather than after the lease runs out."""
    with store.engine.begin() as rows:
        rows.execute(_LOCK)
        now = rows.execute(select(func.now())).scalar_one()
        _release(rows, me, now, None)
        rows.execute(delete(Lease).where(col(Lease.kind) == PROCESS, col(Lease.key) == me))


def holders(store: Store) -> dict[str, str]:
    """Room → the process holding a live lease on it (for tests and operators)."""
    with store.reading() as rows:
        now = rows.execute(select(func.now())).scalar_one()
        return {key: holder for key, holder in rows.execute(
            select(col(Lease.key), col(Lease.holder)).where(
                col(Lease.kind) == ROOM, col(Lease.holder).is_not(None), col(Lease.expires) > now
            )
        ) if holder is not None}


def holder(store: Store, *, room: str) -> str | None:
    """The process holding a live lease on `room`, if any."""
    with store.reading() as rows:
        now = rows.execute(select(func.now())).scalar_one()
        found: str | None = rows.execute(select(col(Lease.holder)).where(
            col(Lease.kind) == ROOM, col(Lease.key) == room, col(Lease.expires) > now
        )).scalar_one_or_none()
        return found


def processes(store: Store) -> frozenset[str]:
    """The processes holding a live lease on a room: those serving any now."""
    with store.reading() as rows:
        now = rows.execute(select(func.now())).scalar_one()
        return frozenset(holder for holder in rows.execute(
            select(col(Lease.holder)).distinct().where(
                col(Lease.kind) == ROOM, col(Lease.holder).is_not(None), col(Lease.expires) > now
            )
        ).scalars() if holder is not None)


def _served(rows: Connection, served: Iterable[str], pools: Iterable[str]) -> set[str]:
    domains = set(pools)
    remembered = rows.execute(select(col(Room.jid)).where(col(Room.joined))).scalars()
    return set(served) | {room for room in remembered if room.partition("@")[2] in domains}


def _release(rows: Connection, me: str, now: datetime, rooms: set[str] | None) -> None:
    """Free `me`'s leases (rooms, or all with the desk), keeping the rows: served before."""
    if rooms is None:
        rows.execute(update(Lease).where(
            col(Lease.holder) == me, col(Lease.kind).in_((ROOM, DESK))
        ).values(holder=None, expires=now))
        return
    for keys in _chunks(sorted(rooms)):
        rows.execute(update(Lease).where(
            col(Lease.holder) == me, col(Lease.kind) == ROOM, col(Lease.key).in_(keys)
        ).values(holder=None, expires=now))


def _upsert(
    rows: Connection, kind: str, keys: list[str], me: str, until: datetime, now: datetime, *,
    take_any: bool = False,
) -> set[str]:
    """Take or renew the leases `keys` of `kind` for `me` where free or already `me`'s
    (`take_any`: whoever held it); the keys taken."""
    taken: set[str] = set()
    for chunk in _chunks(sorted(keys), CHUNK // 4):  # 4 parameters a row
        statement = insert(Lease).values(
            [{"kind": kind, "key": key, "holder": me, "expires": until} for key in chunk]
        )
        excluded = statement.excluded
        free = or_(
            col(Lease.holder).is_(None), col(Lease.expires) <= now,
            col(Lease.holder) == excluded.holder,
        )
        upsert = statement.on_conflict_do_update(
            index_elements=[col(Lease.kind), col(Lease.key)],
            set_={"holder": excluded.holder, "expires": excluded.expires},
            where=None if take_any else free,
        ).returning(col(Lease.key))
        taken.update(rows.execute(upsert).scalars())
    return taken


def _chunks(items: list[str], size: int = 0) -> Iterator[list[str]]:
    """`items` a statement's worth at a time: PostgreSQL takes at most 65,535 parameters in
    one statement (a lease a room: one tick at 20,000 rooms has more)."""
    size = size or CHUNK
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _order(me: str, room: str) -> bytes:
    """An order of rooms of each process's own: processes starting together reach for
    different rooms first."""
    return hashlib.blake2b(f"{me}\0{room}".encode(), digest_size=8).digest()
