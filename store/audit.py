"""The audit log's queries: a change's row (written in the change's transaction) and the
reads of the log — newest first for people, oldest first for the announcer's follower."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert
from sqlalchemy import select as columns
from sqlmodel import col

from bot.i18n import msg
from bot.names import audit_line, one_line
from bot.values import Actor, AuditEntry, Change, RoomInfo
from store.handle import Store
from store.models import Addin, AuditEvent, Pool, Room, utcnow
from store.unit import Unit

_AUDIT = columns(
    col(AuditEvent.id), col(AuditEvent.at), col(AuditEvent.actor), col(AuditEvent.via),
    col(AuditEvent.action), col(AuditEvent.pool), col(AuditEvent.addin), col(AuditEvent.room),
    col(AuditEvent.detail),
)
_NEW = insert(AuditEvent)
# Changes read with the room as it is now: what announcing them (and the subject pin) needs.
# (A leave: whether the room has an add-in, for the goodbye.)
ROOM_CHANGES = frozenset({"attach", "detach", "pin", "leave"})
_SINCE = (
    _AUDIT.where(col(AuditEvent.id) > bindparam("after"))
    .order_by(col(AuditEvent.id)).limit(bindparam("limit"))
)
_NEWEST = _AUDIT.order_by(col(AuditEvent.id).desc()).limit(bindparam("limit"))
_LAST_ID = columns(func.max(col(AuditEvent.id)))
_ROOM_INFO = (
    columns(col(Room.joined), col(Room.stopped_reason), col(Addin.name), col(Addin.url),
            col(Room.pin), col(Room.pin_tail))
    .outerjoin(Addin, col(Addin.id) == col(Room.addin_id))
    .where(col(Room.jid) == bindparam("room"))
)
_ROOMS_WITH_URL = (
    columns(col(Room.jid), col(Room.joined), col(Room.stopped_reason), col(Addin.name),
            col(Addin.url), col(Room.pin), col(Room.pin_tail))
    .join(Addin, col(Addin.id) == col(Room.addin_id))
    .join(Pool, col(Pool.id) == col(Addin.pool_id))
    .where(col(Pool.name) == bindparam("pool"), col(Addin.url) == bindparam("url"))
    .order_by(col(Room.jid))
)


def record(
    unit: Unit, actor: Actor, action: str, *, pool: str | None = None,
    addin: str | None = None, room: str | None = None, detail: str = "",
    rooms: tuple[RoomInfo, ...] = (),
) -> None:
    """The change's audit row, in its transaction; kept in the unit as a Change (with
    `rooms`, what announcing it needs) for the caller, once it commits.

    Whatever path a value came by, what is stored is text every XML stream can carry, on
    one line: who and what are refused otherwise (CommandError), the detail (which may
    quote what someone sent) has such characters replaced."""
    actor = Actor(one_line(actor.who, what=msg("Who made the change")), actor.via)
    for value in (pool, addin, room):
        if value is not None:
            one_line(value, what=msg("A pool, add-in or room name"))
    detail = audit_line(detail)
    at = utcnow()
    key = unit.rows.execute(_NEW, {
        "at": at, "actor": actor.who, "via": actor.via, "action": action, "pool": pool,
        "addin": addin, "room": room, "detail": detail,
    }).inserted_primary_key  # by RETURNING where the database has it, else lastrowid
    assert key is not None  # noqa: S101 - an INSERT of one row has its key
    entry_id = int(key[0])
    entry = AuditEntry(entry_id, at, actor.who, actor.via, action, pool, addin, room, detail)
    unit.changes.append(Change(entry, rooms))


def room_info(rows: Connection, room: str) -> RoomInfo:
    found = rows.execute(_ROOM_INFO, {"room": room}).first()
    if found is None:
        return RoomInfo(room, None, None, False, None)
    joined, reason, name, url, pin, tail = found
    return RoomInfo(room, name, url, joined, reason, pin=pin, pin_tail=tail)


def newest(store: Store, limit: int) -> list[AuditEntry]:
    """Newest first: the last `limit` changes."""
    with store.reading() as rows:
        return _entries(rows.execute(_NEWEST, {"limit": limit}))


def since(store: Store, after_id: int, limit: int) -> list[AuditEntry]:
    """Oldest first: the changes recorded after `after_id`."""
    with store.reading() as rows:
        return _entries(rows.execute(_SINCE, {"after": after_id, "limit": limit}))


def last_id(store: Store) -> int:
    with store.reading() as rows:
        return int(rows.execute(_LAST_ID).scalar() or 0)


def to_announce(store: Store, after_id: int, limit: int) -> list[Change]:
    """Oldest first: the changes after `after_id`, each with the rooms it concerns as they
    are now, in one look at the database: for an attach, the room; for a URL update, the
    rooms whose add-in has that URL."""
    changes = []
    told: set[tuple[str, str]] = set()  # (room, URL) found for a URL change of this read
    with store.reading() as rows:
        for entry in _entries(rows.execute(_SINCE, {"after": after_id, "limit": limit})):
            found: tuple[RoomInfo, ...] = ()
            if entry.action in ROOM_CHANGES and entry.room:
                found = (room_info(rows, entry.room),)
            elif entry.action == "update-url" and entry.pool:
                # Several add-ins given one URL (an import) find each other's rooms: each
                # room is told once.
                found = tuple(
                    RoomInfo(jid, name, url, joined, reason, pin=pin, pin_tail=tail)
                    for jid, joined, reason, name, url, pin, tail in rows.execute(
                        _ROOMS_WITH_URL, {"pool": entry.pool, "url": entry.detail}
                    )
                    if (jid, url) not in told
                )
                told.update((info.jid, entry.detail) for info in found)
            changes.append(Change(entry, found))
    return changes


def _entries(found: Iterable[Any]) -> list[AuditEntry]:
    return [
        AuditEntry(event_id, utc(at), actor, via, action, pool, addin, room, detail)
        for event_id, at, actor, via, action, pool, addin, room, detail in found
    ]


def utc(when: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time stored here is UTC."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)
