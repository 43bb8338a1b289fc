"""The add-in operations: register, update, rename, unregister, list, show, attach, detach,
join, leave, audit.

Chat and the command line call these same functions, so the rules and the audit trail are
the same whichever way a change arrives. They are blocking (they talk to the database):
the bot runs them off the event loop. Each change writes its audit row in the same
transaction; a refusal raises CommandError and changes nothing.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, text, update
from sqlalchemy import select as columns
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from bot.errors import CommandError, StoreBusy
from bot.names import name_key, pool_of, validate_name
from bot.urls import validate_url
from bot.values import Actor, AddinInfo, AddinPage, AuditEntry, Change, Removed, RoomInfo
from store.database import driver_error, read_session, reading
from store.models import Addin, Announcement, AuditEvent, Pool, Room, utcnow

PAGE_SIZE = 20
FORCED_DETACH = "add-in unregistered (force)"
_T = TypeVar("_T")
_commits = 0  # changes committed by this process (see commits())
_commits_lock = threading.Lock()
# PostgreSQL advisory lock taken by every audited change ("addb"); see _write.
_CHANGES_LOCK = 0x61646462
# Per engine, who is handed the changes this process commits, as it commits them.
_listeners: weakref.WeakKeyDictionary[Engine, list[Callable[[list[Change]], None]]] = (
    weakref.WeakKeyDictionary()
)


# --- input rules ---------------------------------------------------------------------------


# --- changes to add-ins --------------------------------------------------------------------


def register(engine: Engine, actor: Actor, *, pool: str, name: str, url: str) -> AddinInfo:
    name = validate_name(name)
    url = validate_url(url)

    def change(unit: _Unit) -> AddinInfo:
        session = unit.session
        pool_row = _pool(session, pool)
        existing = _find_addin(session, pool_row, name)
        if existing is not None:
            raise CommandError(f"An add-in named “{existing.name}” already exists in {pool}.")
        addin = Addin(
            pool_id=_id(pool_row), name=name, name_key=name_key(name), url=url,
            created_by=actor.who,
        )
        session.add(addin)
        unit.rows.execute(_Q.count_addins, {"pool_id": _id(pool_row), "by": 1})
        _audit(unit, actor, "register", pool=pool, addin=name, detail=url)
        session.flush()
        return _info(session, addin, pool)

    return _write(engine, change, conflict=f"An add-in named “{name}” already exists in {pool}.")


def update_url(
    engine: Engine, actor: Actor, *, pool: str, name: str, url: str
) -> AddinInfo:
    url = validate_url(url)

    def change(unit: _Unit) -> AddinInfo:
        session = unit.session
        addin = _get_addin(session, pool, name)
        if addin.url == url:
            raise CommandError(f"“{addin.name}” already has that URL.")
        addin.url = url
        addin.revision += 1
        session.add(addin)
        using = _rooms_using(session, addin)
        _audit(unit, actor, "update-url", pool=pool, addin=addin.name, detail=url,
               rooms=tuple(_attached(row, addin.name, url) for row in using))
        return _info(session, addin, pool, using)

    return _write(engine, change)


def rename(
    engine: Engine, actor: Actor, *, pool: str, name: str, new_name: str
) -> AddinInfo:
    new_name = validate_name(new_name, what="New name")

    def change(unit: _Unit) -> AddinInfo:
        session = unit.session
        addin = _get_addin(session, pool, name)
        clash = _find_addin(session, _pool(session, pool), new_name)
        if clash is not None and clash.id != addin.id:
            raise CommandError(f"An add-in named “{clash.name}” already exists in {pool}.")
        if addin.name == new_name:
            raise CommandError(f"“{addin.name}” already has that name.")
        old = addin.name
        addin.name, addin.name_key = new_name, name_key(new_name)
        addin.revision += 1
        session.add(addin)
        _audit(unit, actor, "rename", pool=pool, addin=new_name, detail=f"was “{old}”")
        return _info(session, addin, pool)

    clash = f"An add-in named “{new_name}” already exists in {pool}."
    return _write(engine, change, conflict=clash)


def unregister(engine: Engine, actor: Actor, *, pool: str, name: str, force: bool) -> Removed:
    """Remove an add-in; with `force` first detach it from the rooms using it."""

    def change(unit: _Unit) -> Removed:
        session = unit.session
        addin = _get_addin(session, pool, name)
        rooms = _rooms_using(session, addin)
        if rooms and not force:
            listed = ", ".join(room.jid for room in rooms)
            raise CommandError(
                f"“{addin.name}” is used by {len(rooms)} room(s): {listed}. "
                f"Detach it first, or add force to detach it from them."
            )
        for room in rooms:
            room.addin_id, room.attached_at = None, None
            session.add(room)
            _audit(unit, actor, "detach", pool=pool, addin=addin.name, room=room.jid,
                   detail=FORCED_DETACH)
        session.flush()
        session.execute(delete(Announcement).where(col(Announcement.addin_id) == _id(addin)))
        session.delete(addin)
        unit.rows.execute(_Q.count_addins, {"pool_id": addin.pool_id, "by": -1})
        _audit(unit, actor, "unregister", pool=pool, addin=addin.name, detail=addin.url)
        return Removed(addin.name, tuple(room.jid for room in rooms))

    return _write(engine, change)


# --- rooms ---------------------------------------------------------------------------------


def attach(engine: Engine, actor: Actor, *, room: str, name: str) -> RoomInfo:
    pool = pool_of(room)

    def change(unit: _Unit) -> RoomInfo:
        found = _HOT_ATTACH_TARGET.first(
            unit.rows, {"pool": pool, "key": name_key(name), "room": room}
        )
        if found is None:
            raise CommandError(f"No add-in named “{name}” in {pool}.")
        addin_id, addin_name, url, room_id, current, joined, reason = found
        if room_id is None:  # a room attached before the bot ever served it
            row = _room(unit.session, room, create=True)
            room_id, current, joined, reason = row.id, row.addin_id, row.joined, row.stopped_reason
        if current == addin_id:
            raise CommandError(f"{room} already has the add-in “{addin_name}”.")
        _HOT_SET_ADDIN.execute(unit.rows, {"room_id": room_id, "addin": addin_id, "at": utcnow()})
        info = RoomInfo(room, addin_name, url, bool(joined), reason)
        _audit(unit, actor, "attach", pool=pool, addin=addin_name, room=room, detail=url,
               rooms=(info,))
        return info

    return _write(engine, change)


def detach(engine: Engine, actor: Actor, *, room: str) -> str:
    """Detach the room's add-in; returns the name it had."""

    def change(unit: _Unit) -> str:
        session = unit.session
        row = _room(session, room, create=False)
        addin = session.get(Addin, row.addin_id) if row and row.addin_id else None
        if row is None or addin is None:
            raise CommandError(f"{room} has no add-in.")
        row.addin_id, row.attached_at = None, None
        session.add(row)
        _audit(unit, actor, "detach", pool=pool_of(room), addin=addin.name, room=room)
        return addin.name

    return _write(engine, change)


def set_joined(
    engine: Engine, actor: Actor, *, room: str, joined: bool, reason: str | None = None
) -> bool:
    """Remember (or forget) that the bot serves `room`; False if nothing changed."""

    def change(unit: _Unit) -> bool:
        session = unit.session
        if not joined and reason is None and _room(session, room, create=False) is None:
            return False  # leaving a room never known: nothing to remember
        row = _room(session, room, create=True)
        if row.joined == joined and row.stopped_reason == reason:
            return False
        row.joined, row.stopped_reason = joined, reason
        session.add(row)
        action = "join" if joined else ("leave" if reason is None else "stop")
        _audit(unit, actor, action, pool=pool_of(room), room=room, detail=reason or "")
        return True

    return _write(engine, change)


def room_info(engine: Engine, room: str) -> RoomInfo:
    with _rows(engine) as rows:
        return _room_info(rows, room)


def _room_info(rows: Connection, room: str) -> RoomInfo:
    found = rows.execute(_Q.room_info, {"room": room}).first()
    if found is None:
        return RoomInfo(room, None, None, False, None)
    joined, reason, name, url = found
    return RoomInfo(room, name, url, joined, reason)


def list_rooms(
    engine: Engine, *, pool: str | None = None, joined_only: bool = False
) -> list[RoomInfo]:
    with _reading(engine) as session:
        query = select(Room, Addin).join(Addin, isouter=True).order_by(col(Room.jid))
        if pool is not None:
            query = query.join(Pool, col(Pool.id) == col(Room.pool_id)).where(Pool.name == pool)
        if joined_only:
            query = query.where(col(Room.joined).is_(True))
        return [
            RoomInfo(
                row.jid, addin.name if addin else None, addin.url if addin else None,
                row.joined, row.stopped_reason,
            )
            for row, addin in session.exec(query).all()
            if joined_only or row.joined or addin is not None
        ]


# --- reading -------------------------------------------------------------------------------


def list_addins(engine: Engine, *, pool: str, page: int = 1) -> AddinPage:
    if page < 1:
        raise CommandError("Page numbers start at 1.")
    with _rows(engine) as rows:
        total = rows.execute(_Q.addin_count, {"pool": pool}).scalar() or 0
        pages = max(1, -(-total // PAGE_SIZE))
        if page > pages:
            raise CommandError(f"There are only {pages} page(s).")
        # Rooms are counted for this page's add-ins only (through the index on
        # room.addin_id): a page costs the same with a hundred rooms or a hundred thousand.
        found = rows.execute(
            _Q.addin_page, {"pool": pool, "skip": (page - 1) * PAGE_SIZE}
        ).all()
    items = tuple((name, url, uses) for name, url, uses in found)
    return AddinPage(pool, items, page, pages, int(total))


def show(engine: Engine, *, pool: str, name: str) -> AddinInfo:
    with _rows(engine) as rows:
        found = rows.execute(_Q.addin, {"pool": pool, "key": name_key(name)}).first()
        if found is None:
            raise CommandError(f"No add-in named “{name}” in {pool}.")
        addin_id, addin_name, url, created_by, created_at = found
        used_by = rows.execute(_Q.rooms_using, {"addin_id": addin_id}).scalars().all()
    return AddinInfo(addin_name, url, pool, created_by, _utc(created_at), tuple(used_by))


def audit(engine: Engine, *, limit: int = 20) -> list[AuditEntry]:
    """Newest first: the last `limit` changes."""
    return _entries(engine, _Q.newest_changes, {"limit": limit})


def changes_since(engine: Engine, after_id: int, *, limit: int = 500) -> list[AuditEntry]:
    """Oldest first: the changes recorded after `after_id`, for the running bot to act on."""
    return _entries(engine, _Q.changes_since, {"after": after_id, "limit": limit})


def changes_to_announce(engine: Engine, after_id: int, *, limit: int = 500) -> list[Change]:
    """Oldest first: the changes after `after_id`, each with the rooms it concerns, in one
    look at the database."""
    with _rows(engine) as rows:
        changes = []
        for entry in _audit_entries(rows.execute(_Q.changes_since, {"after": after_id,
                                                                      "limit": limit})):
            rooms: tuple[RoomInfo, ...] = ()
            if entry.action == "attach" and entry.room:
                rooms = (_room_info(rows, entry.room),)
            elif entry.action == "update-url" and entry.pool:
                rooms = tuple(
                    RoomInfo(jid, name, url, joined, reason)
                    for jid, joined, reason, name, url in rows.execute(
                        _Q.rooms_with_url, {"pool": entry.pool, "url": entry.detail}
                    )
                )
            changes.append(Change(entry, rooms))
    return changes


def claim_announcement(
    engine: Engine, *, room: str, person: str, cooldown_s: int
) -> RoomInfo | None:
    """The room's add-in if `person` is to be told it now (and note that they were), or None:
    no add-in, or they were told this same add-in within the cool-down."""
    info, told = claim_announcements(engine, room=room, people=[person], cooldown_s=cooldown_s)
    return info if told else None


def claim_announcements(
    engine: Engine, *, room: str, people: Sequence[str], cooldown_s: int
) -> tuple[RoomInfo | None, tuple[str, ...]]:
    """For people who just joined `room`: the room's add-in (None: it has none) and those of
    them to be told it now, noted as told; the others were told this same add-in within the
    cool-down. One transaction for all of them, however many arrive at once."""
    wanted = list(dict.fromkeys(people))

    def change(unit: _Unit) -> tuple[RoomInfo | None, tuple[str, ...]]:
        rows = unit.rows
        found = rows.execute(_Q.claim_room, {"room": room}).first()
        if found is None:
            return None, ()
        room_id, joined, reason, addin_id, name, url, revision = found
        receipts = {
            person: (receipt_id, told_addin, told_revision, _utc(at))
            for receipt_id, person, told_addin, told_revision, at in rows.execute(
                _Q.receipts, {"room_id": room_id, "people": wanted}
            )
        }
        now = utcnow()
        told, new, renewed = [], [], []
        for person in wanted:
            receipt = receipts.get(person)
            if receipt is None:
                new.append(person)
            else:
                receipt_id, told_addin, told_revision, at = receipt
                if (told_addin, told_revision) == (addin_id, revision) and (
                    (now - at).total_seconds() < cooldown_s
                ):
                    continue  # told this very add-in within the cool-down
                renewed.append(receipt_id)
            told.append(person)
        if new:
            rows.execute(_Q.new_receipt, [
                {"room_id": room_id, "person": person, "addin_id": addin_id,
                 "revision": revision, "at": now}
                for person in new
            ])
        if renewed:
            rows.execute(
                _Q.renew_receipts,
                {"ids": renewed, "addin": addin_id, "rev": revision, "when": now},
            )
        return RoomInfo(room, name, url, joined, reason), tuple(told)

    for _ in range(2):
        try:
            return _write(engine, change, conflict="told", counted=False)
        except CommandError:
            continue  # another process noted one of them at the same moment: look again
    return None, ()


def record(
    engine: Engine, actor: Actor, action: str, *, room: str | None = None, detail: str = ""
) -> None:
    """An audit row for something that changed nothing else (an invitation declined)."""

    def change(unit: _Unit) -> None:
        pool = pool_of(room) if room else None
        _audit(unit, actor, action, pool=pool, room=room, detail=detail[:4096])

    _write(engine, change)


def last_audit_id(engine: Engine) -> int:
    with _reading(engine) as session:
        newest = session.exec(select(func.max(AuditEvent.id))).one()
        return int(newest or 0)


# --- helpers -------------------------------------------------------------------------------


def listen(engine: Engine, listener: Callable[[list[Change]], None]) -> None:
    """Hand `listener` the changes this process commits on `engine`, on the committing
    thread, right after each commit, in audit order; each with the rooms it concerns as
    the transaction left them (Change). It must not raise, nor block."""
    _listeners.setdefault(engine, []).append(listener)


def unlisten(engine: Engine, listener: Callable[[list[Change]], None]) -> None:
    with contextlib.suppress(KeyError, ValueError):
        _listeners[engine].remove(listener)


def commits() -> int:
    """How many changes this process has committed so far (not counting the notes of whom
    the bot told an add-in, which no answer reads). The bot looks for something to announce
    after a command only if this moved, and keeps an answer only while it has not
    (bot/commands/answers.py); other processes' changes are found at the next poll."""
    return _commits


def _write(
    engine: Engine, change: Callable[[_Unit], _T], *, conflict: str | None = None,
    counted: bool = True,
) -> _T:
    global _commits
    try:
        with engine.begin() as rows:  # on SQLite, BEGIN IMMEDIATE: writers queue up front
            unit = _Unit(rows)
            if counted:
                _take_turn(rows)
            try:
                result = change(unit)
                unit.flush()
            finally:
                unit.close()
            changes = unit.changes
    except IntegrityError:
        if conflict is None:
            raise
        raise CommandError(conflict) from None
    except OperationalError as exc:
        raise StoreBusy() from exc
    if counted:
        with _commits_lock:
            _commits += 1
    if changes:
        for listener in _listeners.get(engine, ()):
            listener(changes)
    return result


def _take_turn(rows: Connection) -> None:
    """Audited changes commit one at a time, so that audit ids are in commit order: the
    follower reads the log by id, and an id taken by a change that commits after a later id
    would be passed over. SQLite's BEGIN IMMEDIATE already makes writers take turns; on
    PostgreSQL a transaction-scoped advisory lock does, released at commit."""
    if rows.dialect.name == "postgresql":
        rows.execute(_Q.take_turn, {"key": _CHANGES_LOCK})


class _Unit:
    """One change's transaction: its connection (`rows`, for the prepared queries), an ORM
    session over the same transaction for the changes that want one (made on first use: a
    session costs more than the statements of a plain change), and the audit rows written."""

    def __init__(self, rows: Connection) -> None:
        self.rows = rows
        self.changes: list[Change] = []
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            # It joins the connection's transaction and never commits it: _write does.
            self._session = Session(
                bind=self.rows, expire_on_commit=False, join_transaction_mode="rollback_only"
            )
        return self._session

    def flush(self) -> None:
        if self._session is not None:
            self._session.flush()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


@contextmanager
def _rows(engine: Engine) -> Iterator[Connection]:
    """A read-only connection for the prepared queries (_Q); database trouble becomes
    StoreBusy."""
    try:
        with reading(engine) as connection:
            yield connection
    except OperationalError as exc:
        raise StoreBusy() from exc


_AUDIT = columns(
    col(AuditEvent.id), col(AuditEvent.at), col(AuditEvent.actor), col(AuditEvent.via),
    col(AuditEvent.action), col(AuditEvent.pool), col(AuditEvent.addin), col(AuditEvent.room),
    col(AuditEvent.detail),
)


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


class _Q:
    """The queries run for every command and every joiner, built once with parameters:
    building a statement costs SQLAlchemy more than SQLite takes to run it."""

    room_info = (
        columns(col(Room.joined), col(Room.stopped_reason), col(Addin.name), col(Addin.url))
        .outerjoin(Addin, col(Addin.id) == col(Room.addin_id))
        .where(col(Room.jid) == bindparam("room"))
    )
    set_addin = (
        update(Room).where(col(Room.id) == bindparam("room_id"))
        .values(addin_id=bindparam("addin"), attached_at=bindparam("at"))
    )
    addin = (
        columns(col(Addin.id), col(Addin.name), col(Addin.url), col(Addin.created_by),
                col(Addin.created_at))
        .join(Pool, col(Pool.id) == col(Addin.pool_id))
        .where(col(Pool.name) == bindparam("pool"), col(Addin.name_key) == bindparam("key"))
    )
    attach_target = (  # the add-in, and the room if it is known yet: one look for attach
        columns(col(Addin.id), col(Addin.name), col(Addin.url), col(Room.id),
                col(Room.addin_id), col(Room.joined), col(Room.stopped_reason))
        .join(Pool, col(Pool.id) == col(Addin.pool_id))
        .outerjoin(Room, col(Room.jid) == bindparam("room"))
        .where(col(Pool.name) == bindparam("pool"), col(Addin.name_key) == bindparam("key"))
    )
    addin_count = columns(col(Pool.addin_count)).where(col(Pool.name) == bindparam("pool"))
    count_addins = (
        update(Pool).where(col(Pool.id) == bindparam("pool_id"))
        .values(addin_count=col(Pool.addin_count) + bindparam("by"))
    )
    addin_page = (
        columns(
            _PAGE.c.name, _PAGE.c.url,
            columns(func.count()).select_from(Room)
            .where(col(Room.addin_id) == _PAGE.c.id).scalar_subquery(),
        )
        .order_by(_PAGE.c.name_key)
    )
    rooms_with_url = (
        columns(col(Room.jid), col(Room.joined), col(Room.stopped_reason), col(Addin.name),
                col(Addin.url))
        .join(Addin, col(Addin.id) == col(Room.addin_id))
        .join(Pool, col(Pool.id) == col(Addin.pool_id))
        .where(col(Pool.name) == bindparam("pool"), col(Addin.url) == bindparam("url"))
        .order_by(col(Room.jid))
    )
    rooms_using = (
        columns(col(Room.jid)).where(col(Room.addin_id) == bindparam("addin_id"))
        .order_by(col(Room.jid))
    )
    changes_since = (
        _AUDIT.where(col(AuditEvent.id) > bindparam("after"))
        .order_by(col(AuditEvent.id)).limit(bindparam("limit"))
    )
    newest_changes = _AUDIT.order_by(col(AuditEvent.id).desc()).limit(bindparam("limit"))
    claim_room = (
        columns(col(Room.id), col(Room.joined), col(Room.stopped_reason), col(Addin.id),
                col(Addin.name), col(Addin.url), col(Addin.revision))
        .join(Addin, col(Addin.id) == col(Room.addin_id))
        .where(col(Room.jid) == bindparam("room"))
    )
    receipts = (
        columns(col(Announcement.id), col(Announcement.person), col(Announcement.addin_id),
                col(Announcement.revision), col(Announcement.at))
        .where(col(Announcement.room_id) == bindparam("room_id"),
               col(Announcement.person).in_(bindparam("people", expanding=True)))
    )
    new_receipt = insert(Announcement)
    take_turn = text("SELECT pg_advisory_xact_lock(:key)")
    renew_receipts = (
        update(Announcement).where(col(Announcement.id).in_(bindparam("ids", expanding=True)))
        .values(addin_id=bindparam("addin"), revision=bindparam("rev"), at=bindparam("when"))
    )


class _Hot:
    """A statement run on the database driver's own cursor, in the change's transaction.
    SQLAlchemy compiles it (once per dialect), fills in its parameters and converts them by
    their column types, so the SQL and the values sent are what SQLAlchemy would send; what
    is left out is SQLAlchemy's work on every execution (cache key, events, a result
    object): ~50 µs a statement, more on a cold core. For the statements of attach, the
    write chat makes most, whose round trip that made ~0.25 ms (15–20%) longer."""

    def __init__(self, statement: Any, *, key: Any = None) -> None:
        self.statement = statement
        self.key = key  # an INSERT's primary key column, for inserted_id()
        self._by_dialect: dict[tuple[str, bool], _Compiled] = {}

    def _compiled(self, dialect: Any) -> _Compiled:
        # An INSERT hands back its key by RETURNING where the database has it (PostgreSQL,
        # SQLite from 3.35), else by the cursor's lastrowid.
        returns = self.key is not None and bool(dialect.insert_returning)
        found = self._by_dialect.get((dialect.name, returns))
        if found is None:
            statement = self.statement.returning(self.key) if returns else self.statement
            compiled = statement.compile(dialect=dialect)
            order = tuple(compiled.positiontup or ()) if dialect.positional else None
            convert = {
                name: processor for name, bind in compiled.binds.items()
                if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect))
            }
            found = self._by_dialect[dialect.name, returns] = _Compiled(
                compiled, order, convert, returns
            )
        return found

    def _run(self, rows: Connection, values: dict[str, Any]) -> Any:
        compiled, order, convert, _ = self._compiled(rows.dialect)
        params = compiled.construct_params(values)
        for name, processor in convert.items():
            params[name] = processor(params[name])
        cursor = rows.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.string,
                           [params[name] for name in order] if order is not None else params)
        except rows.dialect.loaded_dbapi.Error as exc:
            cursor.close()
            raise driver_error(rows, compiled.string, exc) from exc
        return cursor

    def execute(self, rows: Connection, values: dict[str, Any]) -> None:
        self._run(rows, values).close()

    def first(self, rows: Connection, values: dict[str, Any]) -> tuple[Any, ...] | None:
        cursor = self._run(rows, values)
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()
        return tuple(row) if row is not None else None

    def inserted_id(self, rows: Connection, values: dict[str, Any]) -> int:
        """Run this INSERT of one row; its primary key."""
        returns = self._compiled(rows.dialect).returns
        cursor = self._run(rows, values)
        try:
            return int(cursor.fetchone()[0] if returns else cursor.lastrowid)
        finally:
            cursor.close()


class _Compiled(NamedTuple):
    compiled: Any
    order: tuple[str, ...] | None  # the parameters' order, for a positional driver
    convert: dict[str, Any]  # per parameter, its type's conversion for the driver
    returns: bool  # an INSERT with RETURNING its key


_HOT_ATTACH_TARGET = _Hot(_Q.attach_target)
_HOT_SET_ADDIN = _Hot(_Q.set_addin)
_HOT_NEW_AUDIT = _Hot(
    insert(AuditEvent).values(
        {name: bindparam(name) for name in
         ("at", "actor", "via", "action", "pool", "addin", "room", "detail")}
    ),
    key=col(AuditEvent.id),
)


class _reading:
    """A read-only session; database trouble becomes StoreBusy."""

    def __init__(self, engine: Engine) -> None:
        self._session = read_session(engine)

    def __enter__(self) -> Session:
        return self._session

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        self._session.close()
        if isinstance(exc, OperationalError):
            raise StoreBusy() from exc


def _id(row: Pool | Addin | Room) -> int:
    assert row.id is not None  # noqa: S101 - rows are flushed before their id is read
    return row.id


def _pool(session: Session, name: str) -> Pool:
    pool = session.exec(select(Pool).where(Pool.name == name)).first()
    if pool is None:
        pool = Pool(name=name)
        session.add(pool)
        session.flush()
    return pool


def _find_addin(session: Session, pool: Pool, name: str) -> Addin | None:
    return session.exec(
        select(Addin).where(Addin.pool_id == pool.id, Addin.name_key == name_key(name))
    ).first()


def _get_addin(session: Session, pool: str, name: str) -> Addin:
    addin = session.exec(
        select(Addin)
        .join(Pool)
        .where(Pool.name == pool, Addin.name_key == name_key(name))
    ).first()
    if addin is None:
        raise CommandError(f"No add-in named “{name}” in {pool}.")
    return addin


def _room(session: Session, jid: str, *, create: bool) -> Room:
    row = session.exec(select(Room).where(Room.jid == jid)).first()
    if row is None and create:
        row = Room(jid=jid, pool_id=_id(_pool(session, pool_of(jid))))
        session.add(row)
        session.flush()
    return row  # type: ignore[return-value]


def _rooms_using(session: Session, addin: Addin) -> list[Room]:
    return list(session.exec(select(Room).where(Room.addin_id == addin.id).order_by(col(Room.jid))))


def _info(
    session: Session, addin: Addin, pool: str, using: list[Room] | None = None
) -> AddinInfo:
    """`using`: the rooms using it, when the caller has read them already."""
    if using is None:
        using = _rooms_using(session, addin) if addin.id else []
    rooms = tuple(room.jid for room in using)
    return AddinInfo(addin.name, addin.url, pool, addin.created_by, _utc(addin.created_at), rooms)


def _audit(
    unit: _Unit, actor: Actor, action: str, *, pool: str | None = None,
    addin: str | None = None, room: str | None = None, detail: str = "",
    rooms: tuple[RoomInfo, ...] = (),
) -> None:
    """The change's audit row, in its transaction; kept (with `rooms`, what announcing it
    needs) for the listeners, once it commits."""
    at = utcnow()
    # A plain INSERT (no ORM object to flush at commit), on the driver's cursor.
    entry_id = _HOT_NEW_AUDIT.inserted_id(unit.rows, {
        "at": at, "actor": actor.who, "via": actor.via, "action": action, "pool": pool,
        "addin": addin, "room": room, "detail": detail,
    })
    entry = AuditEntry(entry_id, at, actor.who, actor.via, action, pool, addin, room, detail)
    unit.changes.append(Change(entry, rooms))


def _attached(row: Room, name: str, url: str) -> RoomInfo:
    return RoomInfo(row.jid, name, url, row.joined, row.stopped_reason)


def _entries(engine: Engine, query: Any, values: dict[str, int]) -> list[AuditEntry]:
    with _rows(engine) as rows:
        return _audit_entries(rows.execute(query, values))


def _audit_entries(found: Iterable[Any]) -> list[AuditEntry]:
    return [
        AuditEntry(event_id, _utc(at), actor, via, action, pool, addin, room, detail)
        for event_id, at, actor, via, action, pool, addin, room, detail in found
    ]


def _utc(when: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time stored here is UTC."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)
