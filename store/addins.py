"""The add-ins' queries: register, update a URL, rename, unregister (each with its audit row,
in one transaction), a page of a pool's add-ins and one add-in's details.

The refusals that depend on what is stored (a name taken, a URL unchanged, an add-in still
used) are decided here, inside the transaction that would make the change; the checks of
the input itself are the operations' (bot/addins.py).
"""

from __future__ import annotations

import unicodedata
from dataclasses import replace

from sqlalchemy import Connection, bindparam, delete, func, update
from sqlalchemy import select as columns
from sqlmodel import Session, col, select

from bot.errors import CommandError
from bot.names import name_key, name_skeleton
from bot.values import Actor, AddinInfo, AddinPage, Done, Removed, RoomInfo
from bot.wording import did_you_mean, only_pages, plural, some_of
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
_ROOMS_USING = (
    columns(col(Room.jid)).where(col(Room.addin_id) == bindparam("addin_id"))
    .order_by(col(Room.jid))
)


def taken(name: str, pool: str, asked: str | None = None) -> str:
    if asked is not None and _folded(asked) != _folded(name):  # not just case or width
        return f"“{asked}” looks like “{name}”, which already exists in {pool}."
    return f"An add-in named “{name}” already exists in {pool}."


def _folded(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


def register(store: Store, actor: Actor, *, pool: str, name: str, url: str) -> Done[AddinInfo]:
    def change(unit: Unit) -> AddinInfo:
        session = unit.session
        pool_row = pool_of(session, pool)
        existing = _clash(session, pool_row, name)
        if existing is not None:
            raise CommandError(taken(existing.name, pool, name))
        addin = Addin(
            pool_id=row_id(pool_row), name=name, name_key=name_key(name),
            name_skeleton=name_skeleton(name), url=url,
            created_by=actor.who,
        )
        session.add(addin)
        unit.rows.execute(_COUNT_ADDINS, {"pool_id": row_id(pool_row), "by": 1})
        audit.record(unit, actor, "register", pool=pool, addin=name, detail=url)
        session.flush()
        return _info(session, addin, pool)

    return store.write(change, conflict=taken(name, pool))


def update_url(
    store: Store, actor: Actor, *, pool: str, name: str, url: str
) -> Done[AddinInfo]:
    def change(unit: Unit) -> AddinInfo:
        session = unit.session
        addin = _get(session, pool, name)
        if addin.url == url:
            raise CommandError(f"“{addin.name}” already has that URL.")
        addin.url = url
        addin.revision += 1
        session.add(addin)
        using = _rooms_using(session, addin)
        attached = tuple(
            RoomInfo(row.jid, addin.name, url, row.joined, row.stopped_reason, pin=row.pin,
                     pin_tail=row.pin_tail)
            for row in using
        )
        audit.record(unit, actor, "update-url", pool=pool, addin=addin.name, detail=url,
                     rooms=attached)
        return _info(session, addin, pool, using)

    return store.write(change)


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
            raise CommandError(f"“{addin.name}” already has that name.")
        old = addin.name
        addin.name, addin.name_key = new_name, name_key(new_name)
        addin.name_skeleton = name_skeleton(new_name)
        addin.revision += 1
        session.add(addin)
        audit.record(unit, actor, "rename", pool=pool, addin=new_name, detail=f"was “{old}”")
        return replace(_info(session, addin, pool), was=old)

    return store.write(change, conflict=taken(new_name, pool))


def unregister(
    store: Store, actor: Actor, *, pool: str, name: str, force: bool
) -> Done[Removed]:
    def change(unit: Unit) -> Removed:
        session = unit.session
        addin = _get(session, pool, name)
        rooms = _rooms_using(session, addin)
        if rooms and not force:
            listed = some_of([room.jid for room in rooms])
            raise CommandError(
                f"“{addin.name}” is used by {plural(len(rooms), 'room')}: {listed}. "
                f"Detach it first, or add force to detach it from them."
            )
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
    return CommandError(f"No add-in named “{name}” in {pool}.{did_you_mean(name, names)}")


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
