"""The add-ins' queries: register, update a URL, rename, unregister (each with its audit row,
in one transaction), a page of a pool's add-ins and one add-in's details.

The refusals that depend on what is stored (a name taken, a URL unchanged, an add-in still
used) are decided here, inside the transaction that would make the change; the checks of
the input itself are the operations' (bot/addins.py).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import Connection, bindparam, delete, func, update
from sqlalchemy import select as columns
from sqlmodel import Session, col, select

from bot.errors import CommandError, ImportRefused
from bot.i18n import msg, msg_n
from bot.names import name_key, name_skeleton
from bot.values import (
    Actor,
    AddinInfo,
    AddinPage,
    Done,
    Listed,
    Planned,
    Removed,
    RoomInfo,
    Row,
)
from bot.wording import did_you_mean, only_pages, some_of
from store import audit
from store.handle import Store
from store.models import Addin, Announcement, Pool, Room
from store.unit import Unit

PAGE_SIZE = 20
FORCED_DETACH = "add-in unregistered (force)"

# The pool's add-ins, by the pool's id found first (not by joining the pool by name): so
# PostgreSQL walks the (pool, name) index in order and stops after a page, rather than
# sorting every add-in of the pool.
_IN_POOL = col(Addin.pool_id) == (
    columns(col(Pool.id)).where(col(Pool.name) == bindparam("pool")).scalar_subquery()
)
_PAGE = (  # one page of a pool's add-ins, by name
    columns(col(Addin.id), col(Addin.name), col(Addin.url), col(Addin.name_key))
    .where(_IN_POOL)
    .order_by(col(Addin.name_key))
    .offset(bindparam("skip"))
    .limit(PAGE_SIZE)
    .subquery("page")
)
# Rooms are counted for this page's add-ins only (through the index on room.addin_id): a
# page costs the same with a hundred rooms or a hundred thousand.
_ADDIN_PAGE = (
    columns(
        _PAGE.c.name, _PAGE.c.url,
        columns(func.count()).select_from(Room)
        .where(col(Room.addin_id) == _PAGE.c.id).scalar_subquery(),
    )
    .order_by(_PAGE.c.name_key)
)
_ADDIN_COUNT = columns(col(Pool.addin_count)).where(col(Pool.name) == bindparam("pool"))
_COUNT_ADDINS = (
    update(Pool).where(col(Pool.id) == bindparam("pool_id"))
    .values(addin_count=col(Pool.addin_count) + bindparam("by"))
)
_ADDIN = (
    columns(col(Addin.id), col(Addin.name), col(Addin.url), col(Addin.created_by),
            col(Addin.created_at))
    .join(Pool, col(Pool.id) == col(Addin.pool_id))
    .where(col(Pool.name) == bindparam("pool"), col(Addin.name_key) == bindparam("key"))
)
# Every add-in of some pools, with how many rooms use each, by pool and name: the command
# line's whole list and the export.
_EVERY = (
    columns(
        col(Pool.name), col(Addin.name), col(Addin.url),
        columns(func.count()).select_from(Room)
        .where(col(Room.addin_id) == col(Addin.id)).scalar_subquery(),
    )
    .join(Pool, col(Pool.id) == col(Addin.pool_id))
    .where(col(Pool.name).in_(bindparam("pools", expanding=True)))
    .order_by(col(Pool.name), col(Addin.name_key))
)
_ROOMS_USING = (
    columns(col(Room.jid)).where(col(Room.addin_id) == bindparam("addin_id"))
    .order_by(col(Room.jid))
)


def taken(name: str, pool: str, asked: str | None = None) -> str:
    if asked is not None and _folded(asked) != _folded(name):  # not just case or width
        return msg("“{asked}” looks like “{name}”, which already exists in {pool}.",
                   asked=asked, name=name, pool=pool)
    return msg("An add-in named “{name}” already exists in {pool}.", name=name, pool=pool)


def _folded(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


def register(store: Store, actor: Actor, *, pool: str, name: str, url: str) -> Done[AddinInfo]:
    def change(unit: Unit) -> AddinInfo:
        pool_row = pool_of(unit.session, pool)
        existing = _clash(unit.session, pool_row, name)
        if existing is not None:
            raise CommandError(taken(existing.name, pool, name))
        addin = _add(unit, actor, pool_row, name, url)
        return _info(unit.session, addin, pool)

    return store.write(change, conflict=taken(name, pool))


def _add(unit: Unit, actor: Actor, pool: Pool, name: str, url: str) -> Addin:
    """A new add-in of `pool`, with its audit row (its name checked free by the caller)."""
    addin = Addin(
        pool_id=row_id(pool), name=name, name_key=name_key(name),
        name_skeleton=name_skeleton(name), url=url, created_by=actor.who,
    )
    unit.session.add(addin)
    unit.rows.execute(_COUNT_ADDINS, {"pool_id": row_id(pool), "by": 1})
    audit.record(unit, actor, "register", pool=pool.name, addin=name, detail=url)
    unit.session.flush()
    return addin


def update_url(
    store: Store, actor: Actor, *, pool: str, name: str, url: str
) -> Done[AddinInfo]:
    def change(unit: Unit) -> AddinInfo:
        addin = _get(unit.session, pool, name)
        if addin.url == url:
            raise CommandError(msg("“{name}” already has that URL.", name=addin.name))
        using = _set_url(unit, actor, addin, pool, url)
        return _info(unit.session, addin, pool, using)

    return store.write(change)


def _set_url(unit: Unit, actor: Actor, addin: Addin, pool: str, url: str) -> list[Room]:
    """Give `addin` a new URL, with its audit row (carrying the rooms to tell); the rooms
    using it."""
    addin.url = url
    addin.revision += 1
    unit.session.add(addin)
    using = _rooms_using(unit.session, addin)
    attached = tuple(
        RoomInfo(row.jid, addin.name, url, row.joined, row.stopped_reason, pin=row.pin,
                 pin_tail=row.pin_tail)
        for row in using
    )
    audit.record(unit, actor, "update-url", pool=pool, addin=addin.name, detail=url,
                 rooms=attached)
    return using


class _PoolAddins:
    """A pool's add-ins as an import finds them, by name key and by skeleton, read once;
    kept up to date with those it adds."""

    def __init__(self, session: Session, pool: Pool) -> None:
        self.pool = pool
        found = list(session.exec(select(Addin).where(Addin.pool_id == pool.id)))
        self.by_key = {addin.name_key: addin for addin in found}
        self.by_skeleton = {addin.name_skeleton: addin for addin in found}
        self.added = 0


class _Rehearsed(Exception):
    """Raised inside an import's transaction to roll it back: a dry run's plan."""

    def __init__(self, plan: tuple[Planned, ...]) -> None:
        super().__init__("dry run")
        self.plan = plan


def import_rows(
    store: Store, actor: Actor, rows: Sequence[Row], *, dry_run: bool = False
) -> Done[tuple[Planned, ...]]:
    """Register each row's add-in, or give an existing one (same pool, same name as
    compared) the row's URL, all in one transaction with one audit row per change; a row
    that changes nothing is `unchanged`. A row whose name looks like another add-in's is
    a problem: every problem found (by line) is raised together as ImportRefused, and
    nothing changes. `dry_run`: the same, rolled back: what would change."""

    def change(unit: Unit) -> tuple[Planned, ...]:
        session = unit.session
        plan: list[Planned] = []
        problems: list[tuple[int, str]] = []
        pools: dict[str, _PoolAddins] = {}
        for row in rows:
            if row.pool not in pools:
                pools[row.pool] = _PoolAddins(session, pool_of(session, row.pool))
            known = pools[row.pool]
            key, skeleton = name_key(row.name), name_skeleton(row.name)
            existing = known.by_key.get(key)
            if existing is None:
                clash = known.by_skeleton.get(skeleton)
                if clash is not None:
                    problems.append((row.line, taken(clash.name, row.pool, row.name)))
                    continue
                addin = Addin(
                    pool_id=row_id(known.pool), name=row.name, name_key=key,
                    name_skeleton=skeleton, url=row.url, created_by=actor.who,
                )
                session.add(addin)
                known.by_key[key] = known.by_skeleton[skeleton] = addin
                known.added += 1
                audit.record(unit, actor, "register", pool=row.pool, addin=row.name,
                             detail=row.url)
                plan.append(Planned(row.line, "register", row.pool, row.name, row.url))
            elif existing.url == row.url:
                plan.append(Planned(row.line, "unchanged", row.pool, existing.name, row.url))
            else:
                was = existing.url
                _set_url(unit, actor, existing, row.pool, row.url)
                plan.append(
                    Planned(row.line, "update-url", row.pool, existing.name, row.url, was)
                )
        if problems:
            raise ImportRefused(problems)
        for known in pools.values():
            if known.added:
                unit.rows.execute(_COUNT_ADDINS, {"pool_id": row_id(known.pool),
                                                  "by": known.added})
        if dry_run:
            raise _Rehearsed(tuple(plan))
        return tuple(plan)

    try:
        return store.write(
            change, conflict="Another change to these add-ins came first; nothing was "
                             "changed. Try again.",
        )
    except _Rehearsed as rehearsed:
        return Done(rehearsed.plan)


def rename(
    store: Store, actor: Actor, *, pool: str, name: str, new_name: str
) -> Done[AddinInfo]:
    def change(unit: Unit) -> AddinInfo:
        session = unit.session
        addin = _get(session, pool, name)
        clash = _clash(session, pool_of(session, pool), new_name)
        if clash is not None and clash.id != addin.id:
            raise CommandError(taken(clash.name, pool, new_name))
        if addin.name == new_name:
            raise CommandError(msg("“{name}” already has that name.", name=addin.name))
        old = addin.name
        addin.name, addin.name_key = new_name, name_key(new_name)
        addin.name_skeleton = name_skeleton(new_name)
        addin.revision += 1
        session.add(addin)
        audit.record(unit, actor, "rename", pool=pool, addin=new_name, detail=f"was “{old}”")
        return replace(_info(session, addin, pool), was=old)

    return store.write(change, conflict=taken(new_name, pool))


def unregister(
    store: Store, actor: Actor, *, pool: str, name: str, force: bool, spelled: str = "force"
) -> Done[Removed]:
    """`spelled`: how the asker says force, for the refusal's hint (`--force` at a shell)."""

    def change(unit: Unit) -> Removed:
        session = unit.session
        addin = _get(session, pool, name)
        rooms = _rooms_using(session, addin)
        if rooms and not force:
            listed = some_of([room.jid for room in rooms])
            raise CommandError(msg_n(
                "“{name}” is used by {n} room: {rooms}. "
                "Detach it first, or add {force} to detach it from them.",
                "“{name}” is used by {n} rooms: {rooms}. "
                "Detach it first, or add {force} to detach it from them.",
                len(rooms), name=addin.name, rooms=listed, force=spelled,
            ))
        for room in rooms:
            room.addin_id, room.attached_at = None, None
            session.add(room)
            left = RoomInfo(room.jid, None, None, room.joined, room.stopped_reason,
                            pin=room.pin, pin_tail=room.pin_tail)
            audit.record(unit, actor, "detach", pool=pool, addin=addin.name, room=room.jid,
                         detail=FORCED_DETACH, rooms=(left,))
        session.flush()
        session.execute(delete(Announcement).where(col(Announcement.addin_id) == row_id(addin)))
        session.delete(addin)
        unit.rows.execute(_COUNT_ADDINS, {"pool_id": addin.pool_id, "by": -1})
        audit.record(unit, actor, "unregister", pool=pool, addin=addin.name, detail=addin.url)
        return Removed(addin.name, tuple(room.jid for room in rooms))

    return store.write(change)


def page(store: Store, *, pool: str, number: int) -> AddinPage:
    with store.reading() as rows:
        total = rows.execute(_ADDIN_COUNT, {"pool": pool}).scalar() or 0
        pages = max(1, -(-total // PAGE_SIZE))
        if number > pages:
            raise CommandError(only_pages(pages))
        found = rows.execute(
            _ADDIN_PAGE, {"pool": pool, "skip": (number - 1) * PAGE_SIZE}
        ).all()
    items = tuple((name, url, uses) for name, url, uses in found)
    return AddinPage(pool, items, number, pages, int(total))


def every(store: Store, *, pools: Sequence[str]) -> list[Listed]:
    """Every add-in of `pools`, by pool and name, each with how many rooms use it."""
    with store.reading() as rows:
        found = rows.execute(_EVERY, {"pools": list(pools)}).all()
    return [Listed(pool, name, url, uses) for pool, name, url, uses in found]


def show(store: Store, *, pool: str, name: str) -> AddinInfo:
    with store.reading() as rows:
        found = rows.execute(_ADDIN, {"pool": pool, "key": name_key(name)}).first()
        if found is None:
            raise no_such_addin(rows, pool, name)
        addin_id, addin_name, url, created_by, created_at = found
        used_by = rows.execute(_ROOMS_USING, {"addin_id": addin_id}).scalars().all()
    return AddinInfo(addin_name, url, pool, created_by, audit.utc(created_at), tuple(used_by))


# --- in a change's session -----------------------------------------------------------------


def row_id(row: Pool | Addin | Room) -> int:
    assert row.id is not None  # noqa: S101 - rows are flushed before their id is read
    return row.id


def pool_of(session: Session, name: str) -> Pool:
    """The pool named `name`, made if it is new."""
    pool = session.exec(select(Pool).where(Pool.name == name)).first()
    if pool is None:
        pool = Pool(name=name)
        session.add(pool)
        session.flush()
    return pool


def _clash(session: Session, pool: Pool, name: str) -> Addin | None:
    """The add-in of `pool` that `name` would be taken for: the same name, or a look-alike."""
    return session.exec(
        select(Addin).where(
            Addin.pool_id == pool.id,
            (Addin.name_key == name_key(name)) | (Addin.name_skeleton == name_skeleton(name)),
        ).order_by(col(Addin.name_key) != name_key(name))  # the same name first
    ).first()


def _get(session: Session, pool: str, name: str) -> Addin:
    addin = session.exec(
        select(Addin).join(Pool).where(Pool.name == pool, Addin.name_key == name_key(name))
    ).first()
    if addin is None:
        raise no_such_addin(session.connection(), pool, name)
    return addin


_POOL_NAMES = (
    columns(col(Addin.name)).join(Pool).where(col(Pool.name) == bindparam("pool"))
)


def no_such_addin(rows: Connection, pool: str, name: str) -> CommandError:
    """The refusal of a name no add-in of `pool` has, with the nearest one if any is close."""
    names = rows.execute(_POOL_NAMES, {"pool": pool}).scalars()
    return CommandError(msg(
        "No add-in named “{name}” in {pool}.{did_you_mean}",
        name=name, pool=pool, did_you_mean=did_you_mean(name, names),
    ))


def _rooms_using(session: Session, addin: Addin) -> list[Room]:
    return list(session.exec(select(Room).where(Room.addin_id == addin.id).order_by(col(Room.jid))))


def _info(
    session: Session, addin: Addin, pool: str, using: list[Room] | None = None
) -> AddinInfo:
    """`using`: the rooms using it, when the caller has read them already."""
    if using is None:
        using = _rooms_using(session, addin) if addin.id else []
    rooms = tuple(room.jid for room in using)
    return AddinInfo(
        addin.name, addin.url, pool, addin.created_by, audit.utc(addin.created_at), rooms
    )
