"""The rooms' queries: attach, detach, join and leave (each with its audit row, in one
transaction), a room's add-in, and the rooms known."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, Connection, bindparam, or_, update
from sqlalchemy import select as columns
from sqlmodel import Session, col, select

from bot.errors import CommandError
from bot.i18n import msg
from bot.names import name_key, pool_of
from bot.values import Actor, Done, RoomInfo
from store import audit
from store.addins import no_such_addin, row_id
from store.addins import pool_of as pool_row
from store.handle import Store
from store.models import Addin, Pool, Room, RoomManager, utcnow
from store.unit import Unit

# The add-in, and the room if it is known yet: one look for attach.
_ATTACH_TARGET = (
    columns(col(Addin.id), col(Addin.name), col(Addin.url), col(Room.id),
            col(Room.addin_id), col(Room.joined), col(Room.stopped_reason), col(Room.pin),
            col(Room.pin_tail))
    .join(Pool, col(Pool.id) == col(Addin.pool_id))
    .outerjoin(Room, col(Room.jid) == bindparam("room"))
    .where(col(Pool.name) == bindparam("pool"), col(Addin.name_key) == bindparam("key"))
)
_SET_ADDIN = (
    update(Room).where(col(Room.id) == bindparam("room_id"))
    .values(addin_id=bindparam("addin"), attached_at=bindparam("at"))
)
_ROOMS = (
    columns(col(Room.jid), col(Room.joined), col(Room.stopped_reason), col(Addin.name),
            col(Addin.url), col(Room.pin))
    .outerjoin(Addin, col(Addin.id) == col(Room.addin_id))
    .order_by(col(Room.jid))
)

_MANAGERS_OF = (
    columns(col(RoomManager.jid)).join(Room, col(Room.id) == col(RoomManager.room_id))
    .where(col(Room.jid) == bindparam("room"))
)
_ALL_MANAGERS = columns(col(Room.jid), col(RoomManager.jid)).join(
    Room, col(Room.id) == col(RoomManager.room_id)
)
_PINNED = columns(
    col(Room.jid), col(Room.joined), col(Room.stopped_reason), col(Addin.name), col(Addin.url),
    col(Room.pin), col(Room.pin_tail),
).outerjoin(Addin, col(Addin.id) == col(Room.addin_id))
_SET_TAIL = update(Room).where(col(Room.jid) == bindparam("room")).values(
    pin_tail=bindparam("tail")
)


def attach(store: Store, actor: Actor, *, room: str, name: str) -> Done[RoomInfo]:
    pool = pool_of(room)

    def change(unit: Unit) -> RoomInfo:
        found = unit.rows.execute(
            _ATTACH_TARGET, {"pool": pool, "key": name_key(name), "room": room}
        ).first()
        if found is None:
            raise no_such_addin(unit.rows, pool, name)
        addin_id, addin_name, url, room_id, current, joined, reason, pin, tail = found
        if room_id is None:  # a room attached before the bot ever served it
            row = _room(unit.session, room, create=True)
            room_id, current, joined, reason = row.id, row.addin_id, row.joined, row.stopped_reason
        if current == addin_id:
            raise CommandError(
                msg("{room} already has the add-in “{name}”.", room=room, name=addin_name)
            )
        unit.rows.execute(_SET_ADDIN, {"room_id": room_id, "addin": addin_id, "at": utcnow()})
        info = RoomInfo(room, addin_name, url, bool(joined), reason, pin=pin, pin_tail=tail)
        audit.record(unit, actor, "attach", pool=pool, addin=addin_name, room=room, detail=url,
                     rooms=(info,))
        return info

    return store.write(change)


def detach(store: Store, actor: Actor, *, room: str) -> Done[str]:
    def change(unit: Unit) -> str:
        session = unit.session
        row = _room(session, room, create=False)
        addin = session.get(Addin, row.addin_id) if row and row.addin_id else None
        if row is None or addin is None:
            raise CommandError(msg("{room} has no add-in.", room=room))
        row.addin_id, row.attached_at = None, None
        session.add(row)
        left = RoomInfo(room, None, None, row.joined, row.stopped_reason, pin=row.pin,
                        pin_tail=row.pin_tail)
        audit.record(unit, actor, "detach", pool=pool_of(room), addin=addin.name, room=room,
                     rooms=(left,))
        return addin.name

    return store.write(change)


def set_joined(
    store: Store, actor: Actor, *, room: str, joined: bool, reason: str | None
) -> Done[bool]:
    def change(unit: Unit) -> bool:
        session = unit.session
        if not joined and reason is None and _room(session, room, create=False) is None:
            return False  # leaving a room never known: nothing to remember
        row = _room(session, room, create=True)
        if row.joined == joined and row.stopped_reason == reason:
            return False
        row.joined, row.stopped_reason = joined, reason
        session.add(row)
        action = "join" if joined else ("leave" if reason is None else "stop")
        # A leave carries the room as it is (its add-in, for an owner's goodbye).
        found = (audit.room_info(unit.rows, room),) if action == "leave" else ()
        audit.record(unit, actor, action, pool=pool_of(room), room=room, detail=reason or "",
                     rooms=found)
        return True

    return store.write(change)


def record(
    store: Store, actor: Actor, action: str, *, room: str | None, detail: str
) -> Done[None]:
    """An audit row for something that changed nothing else (an invitation declined)."""

    def change(unit: Unit) -> None:
        pool = pool_of(room) if room else None
        audit.record(unit, actor, action, pool=pool, room=room, detail=detail)

    return store.write(change)


def info(store: Store, room: str) -> RoomInfo:
    with store.reading() as rows:
        return audit.room_info(rows, room)


def known(
    store: Store, *, pool: str | None, joined_only: bool, managers: bool = False
) -> list[RoomInfo]:
    """The rooms served, and those with an add-in or named managers; `joined_only`: only
    those served. `managers`: with their named managers (one more query)."""
    query = _ROOMS
    if pool is not None:
        query = query.join(Pool, col(Pool.id) == col(Room.pool_id)).where(col(Pool.name) == pool)
    if joined_only:
        query = query.where(col(Room.joined).is_(True))
    with store.reading() as rows:
        found = rows.execute(query).all()
        named = _all_managers(rows) if managers else {}
    return [
        RoomInfo(jid, name, url, joined, reason, tuple(sorted(named.get(jid, ()))), pin)
        for jid, joined, reason, name, url, pin in found
        if joined_only or joined or name is not None or jid in named or pin is not None
    ]


# --- named managers, the subject pin --------------------------------------------------------


def managers(store: Store, room: str) -> tuple[str, ...]:
    """The JIDs the owners of `room` named as its managers, sorted."""
    with store.reading() as rows:
        return tuple(sorted(rows.execute(_MANAGERS_OF, {"room": room}).scalars()))


def every_manager(store: Store) -> dict[str, frozenset[str]]:
    """Every room's named managers (read when the bot starts)."""
    with store.reading() as rows:
        return {room: frozenset(jids) for room, jids in _all_managers(rows).items()}


def _all_managers(rows: Connection) -> dict[str, set[str]]:
    named: dict[str, set[str]] = {}
    for room, jid in rows.execute(_ALL_MANAGERS):
        named.setdefault(room, set()).add(jid)
    return named


def set_managers(
    store: Store, actor: Actor, *, room: str, add: Sequence[str], remove: Sequence[str]
) -> Done[tuple[str, ...]]:
    """Name (`add`) and unname (`remove`) managers of `room`, each an audit row
    (`manager-add`, `manager-remove`, the JID as its detail); the result is the managers
    now. Naming one already named, or unnaming one who is not, is refused."""

    def change(unit: Unit) -> tuple[str, ...]:
        session = unit.session
        row = _room(session, room, create=True)
        named = {m.jid: m for m in session.exec(
            select(RoomManager).where(RoomManager.room_id == row.id)
        )}
        for jid in remove:
            if jid not in named:
                raise CommandError(
                    msg("{jid} is not a named manager of {room}.", jid=jid, room=room)
                )
            session.delete(named.pop(jid))
            audit.record(unit, actor, "manager-remove", pool=pool_of(room), room=room,
                         detail=jid)
        for jid in add:
            if jid in named:
                raise CommandError(
                    msg("{jid} is already a manager of {room}.", jid=jid, room=room)
                )
            named[jid] = RoomManager(room_id=row_id(row), jid=jid, added_by=actor.who)
            session.add(named[jid])
            audit.record(unit, actor, "manager-add", pool=pool_of(room), room=room, detail=jid)
        return tuple(sorted(named))

    return store.write(change)


def pinned(store: Store, *, default: bool) -> list[RoomInfo]:
    """The rooms whose subject carries (or should carry) the add-in: pin on, or not chosen
    where `default` (announce.pin) is on; or that still carry a tail the bot wrote."""
    wanted: list[ColumnElement[bool]] = [col(Room.pin).is_(True), col(Room.pin_tail).is_not(None)]
    if default:
        wanted.append(col(Room.pin).is_(None) & col(Room.addin_id).is_not(None))
    query = _PINNED.where(or_(*wanted))
    with store.reading() as rows:
        return [
            RoomInfo(jid, name, url, joined, reason, pin=pin, pin_tail=tail)
            for jid, joined, reason, name, url, pin, tail in rows.execute(query)
        ]


def set_pin(store: Store, actor: Actor, *, room: str, pin: bool) -> Done[RoomInfo]:
    """`pin on|off` for `room` (audited as `pin`, detail `on` or `off`); the room as it is
    now, for the announcer to put the tail on the subject or take it off."""

    def change(unit: Unit) -> RoomInfo:
        session = unit.session
        row = _room(session, room, create=True)
        if row.pin is pin:
            raise CommandError(
                msg("The add-in is already pinned to the subject of {room}.", room=room) if pin
                else msg("The add-in is already not pinned to the subject of {room}.", room=room)
            )
        row.pin = pin
        session.add(row)
        session.flush()
        found = audit.room_info(unit.rows, room)
        audit.record(unit, actor, "pin", pool=pool_of(room), room=room,
                     detail="on" if pin else "off", rooms=(found,))
        return found

    return store.write(change)


def set_pin_tail(store: Store, *, room: str, tail: str | None) -> None:
    """Remember the tail the bot wrote on the subject of `room` (None: none)."""

    def change(unit: Unit) -> None:
        unit.rows.execute(_SET_TAIL, {"room": room, "tail": tail})

    store.write(change, audited=False)


def _room(session: Session, jid: str, *, create: bool) -> Room:
    row = session.exec(select(Room).where(Room.jid == jid)).first()
    if row is None and create:
        row = Room(jid=jid, pool_id=row_id(pool_row(session, pool_of(jid))))
        session.add(row)
        session.flush()
    return row  # type: ignore[return-value]
