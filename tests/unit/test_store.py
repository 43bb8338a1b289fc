"""The store and the add-in operations (`bot.addins`), on SQLite and on PostgreSQL.

Every change writes exactly one audit row (a forced unregister one per room as well), and every
refusal raises CommandError and leaves every table as it was.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import event, insert, inspect, text, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot import addins, names
from bot.addins import PAGE_SIZE
from bot.errors import CommandError, StoreBusy
from bot.values import Actor, AuditEntry, Change, Done, RoomInfo
from store import Store, audit
from store.database import make_engine
from store.migrate import alembic_config, current_revision, head, upgrade
from store.models import Addin, Announcement, AuditEvent, Room
from store.unit import Unit, reading

POOL = "conference.localhost"
OTHER = "chat.localhost"
ADMIN = Actor("admin@localhost", "dm")
SHELL = Actor("root", "cli")
ROOM_A = f"alpha@{POOL}"
ROOM_B = f"beta@{POOL}"
TABLES = ("pool", "addin", "room", "auditevent", "announcement", "roommanager", "mute")
URL = "https://stocks.example.org/panel"
URL2 = "https://stocks.example.org/v2"
ORDERED_ROWS = "SELECT * FROM {} ORDER BY id"


# --- helpers -------------------------------------------------------------------------------


def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to show that a refusal changed nothing."""
    with store.engine.connect() as connection:
        return {
            table: [tuple(row) for row in connection.execute(text(ORDERED_ROWS.format(table)))]
            for table in TABLES
        }


def audit_log(store: Store) -> list[AuditEntry]:
    return addins.changes_since(store, 0)


@dataclass(frozen=True)
class Row:
    """The parts of an audit row a test can predict."""

    actor: str
    via: str
    action: str
    pool: str | None
    addin: str | None
    room: str | None
    detail: str


def rows_after(store: Store, after: int) -> list[Row]:
    return [
        Row(e.actor, e.via, e.action, e.pool, e.addin, e.room, e.detail)
        for e in addins.changes_since(store, after)
    ]


def register(store: Store, name: str, url: str = URL, pool: str = POOL) -> addins.AddinInfo:
    return addins.register(store, ADMIN, pool=pool, name=name, url=url).result


def addin_row(store: Store, name: str) -> Addin:
    """The row of the add-in `name` (tests using it have one pool in use)."""
    with Session(store.engine) as session:
        row = session.exec(select(Addin).where(Addin.name_key == names.name_key(name))).first()
        assert row is not None
        return row


# --- migrations and connections ------------------------------------------------------------


def test_migrations_create_the_tables_and_running_them_again_changes_nothing(
    store: Store,
) -> None:
    assert set(TABLES) | {"alembic_version"} <= set(inspect(store.engine).get_table_names())
    assert current_revision(store.engine) == head(store.engine)
    register(store, "Stock")
    before = snapshot(store)

    store.upgrade()

    assert current_revision(store.engine) == head(store.engine)
    assert snapshot(store) == before


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    sqlite = make_engine(f"sqlite:///{tmp_path}/p.db")
    try:
        upgrade(sqlite)
        with sqlite.connect() as connection:
            def pragma(name: str) -> Any:
                return connection.exec_driver_sql(f"PRAGMA {name}").scalar()

            assert pragma("journal_mode") == "wal"
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == 5000
    finally:
        sqlite.dispose()


def test_sqlite_writers_take_the_write_lock_as_they_begin_and_readers_never(
    tmp_path: Path,
) -> None:
    path = tmp_path / "p.db"
    sqlite = make_engine(f"sqlite:///{path}")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        upgrade(sqlite)
        with sqlite.begin() as writing:
            assert writing.connection.driver_connection.in_transaction  # type: ignore[union-attr]
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")  # held since BEGIN, before any write
            with reading(sqlite) as read:  # a reader does not wait for the writer
                assert read.execute(text("SELECT count(*) FROM room")).scalar() == 0
        other.execute("BEGIN IMMEDIATE")  # free again once the writer committed
        other.execute("ROLLBACK")
    finally:
        other.close()
        sqlite.dispose()


def test_sqlite_hands_out_the_connection_used_last_whose_cache_is_warm(tmp_path: Path) -> None:
    sqlite = make_engine(f"sqlite:///{tmp_path}/p.db")
    try:
        held = [sqlite.connect() for _ in range(3)]  # three connections in the pool
        drivers = [connection.connection.driver_connection for connection in held]
        for connection in held:
            connection.close()
        for _ in range(3):
            with sqlite.connect() as connection:
                assert connection.connection.driver_connection is drivers[-1]
    finally:
        sqlite.dispose()


def test_foreign_keys_are_enforced(store: Store) -> None:
    with Session(store.engine) as session:
        session.add(Addin(pool_id=999, name="x", name_key="x", name_skeleton="x", url=URL,
                          created_by="t"))
        with pytest.raises(IntegrityError, match=r"(?i)foreign key"):
            session.commit()


# --- register ------------------------------------------------------------------------------


def test_register_stores_the_add_in_and_one_audit_row(store: Store) -> None:
    info = register(store, "Stock Ticker", "HTTPS://Stocks.Example.org/panel")

    assert (info.name, info.url, info.pool, info.created_by, info.rooms) == (
        "Stock Ticker", URL, POOL, "admin@localhost", (),
    )
    assert info.created_at.tzinfo is not None
    assert abs(datetime.now(UTC) - info.created_at) < timedelta(minutes=1)
    assert addins.show(store, pool=POOL, name="stock ticker") == info
    assert rows_after(store, 0) == [
        Row("admin@localhost", "dm", "register", POOL, "Stock Ticker", None, URL)
    ]


@pytest.mark.parametrize(
    "name",
    ["x" * 64, "Q&A board", "名前", "pool", "force", "a\u00a0b", "Ünïcödé", "100%"],
)
def test_register_accepts_reasonable_names(store: Store, name: str) -> None:
    assert register(store, name).name == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "Add-in name must be 1 to 64 characters long."),
        ("x" * 65, "Add-in name must be 1 to 64 characters long."),
        (" Stock", "Add-in name must not start or end with white space."),
        ("Stock ", "Add-in name must not start or end with white space."),
        ("\u3000Stock", "Add-in name must not start or end with white space."),
        ("Sto\u200bck", "Add-in name must not contain control or invisible characters."),
        ("Sto\u202eck", "Add-in name must not contain control or invisible characters."),
        ("Sto\u2066ck", "Add-in name must not contain control or invisible characters."),
        ("Sto\x07ck", "Add-in name must not contain control or invisible characters."),
        ("Sto\nck", "Add-in name must not contain control or invisible characters."),
        ("Sto\u2028ck", "Add-in name must not contain control or invisible characters."),
        ("Sto\ufeffck", "Add-in name must not contain control or invisible characters."),
        ("Sto\ue000ck", "Add-in name must not contain control or invisible characters."),
        # 64 characters, but each one spells out as 18 when names are compared
        ("\ufdfa" * 64, "Add-in name is too long once its characters are spelled out."),
    ],
)
def test_register_refuses_bad_names_and_stores_nothing(
    store: Store, name: str, reason: str
) -> None:
    before = snapshot(store)
    with pytest.raises(CommandError) as caught:
        register(store, name)
    assert caught.value.reason == reason
    assert snapshot(store) == before


def test_register_stores_names_in_nfc(store: Store) -> None:
    assert register(store, "Cafe\u0301").name == "Café"
    with pytest.raises(CommandError, match="already exists"):
        register(store, "Café")


@pytest.mark.parametrize("clash", ["stock", "STOCK", "ＳＴＯＣＫ", "Ｓｔｏｃｋ", "ſtock"])
def test_names_are_unique_per_pool_case_and_width_folded(store: Store, clash: str) -> None:
    register(store, "Stock")
    before = snapshot(store)
    with pytest.raises(CommandError) as caught:
        register(store, clash, "https://other.example/")
    assert caught.value.reason == f"An add-in named “Stock” already exists in {POOL}."
    assert snapshot(store) == before


def test_case_folding_is_full_not_just_lower_case(store: Store) -> None:
    register(store, "Straße")
    with pytest.raises(CommandError, match="“Straße” already exists"):
        register(store, "STRASSE")


def test_the_same_name_may_live_in_another_pool(store: Store) -> None:
    register(store, "Stock")
    other = register(store, "stock", URL2, pool=OTHER)
    assert (other.pool, other.url) == (OTHER, URL2)
    assert addins.show(store, pool=POOL, name="STOCK").url == URL
    assert addins.show(store, pool=OTHER, name="STOCK").url == URL2


def test_register_refuses_a_bad_url_and_stores_nothing(store: Store) -> None:
    before = snapshot(store)
    with pytest.raises(CommandError, match=r"^URL refused: only http and https"):
        register(store, "Stock", "javascript:alert(1)")
    assert snapshot(store) == before


# --- update_url ----------------------------------------------------------------------------


def test_update_url_bumps_the_revision_and_writes_one_row(store: Store) -> None:
    register(store, "Stock")
    addins.attach(store, ADMIN, room=ROOM_A, name="Stock")
    mark = addins.last_audit_id(store)

    info = addins.update_url(store, SHELL, pool=POOL, name="STOCK", url=URL2).result

    assert (info.name, info.url, info.rooms) == ("Stock", URL2, (ROOM_A,))
    assert addin_row(store, "Stock").revision == 2
    assert addins.room_info(store, ROOM_A).url == URL2
    assert rows_after(store, mark) == [Row("root", "cli", "update-url", POOL, "Stock", None, URL2)]


@pytest.mark.parametrize("same", [URL, "HTTPS://STOCKS.example.org/panel"])
def test_update_url_to_the_same_url_is_refused(store: Store, same: str) -> None:
    register(store, "Stock")
    before = snapshot(store)
    with pytest.raises(CommandError) as caught:
        addins.update_url(store, ADMIN, pool=POOL, name="Stock", url=same)
    assert caught.value.reason == "“Stock” already has that URL."
    assert snapshot(store) == before


# --- rename --------------------------------------------------------------------------------


def test_rename_keeps_the_attachments_and_writes_one_row(store: Store) -> None:
    register(store, "Stock")
    addins.attach(store, ADMIN, room=ROOM_A, name="Stock")
    mark = addins.last_audit_id(store)

    info = addins.rename(store, ADMIN, pool=POOL, name="stock", new_name="Ticker").result

    assert (info.name, info.url, info.rooms) == ("Ticker", URL, (ROOM_A,))
    assert addins.room_info(store, ROOM_A).addin == "Ticker"
    assert addin_row(store, "Ticker").revision == 2
    with pytest.raises(CommandError, match="No add-in named “Stock”"):
        addins.show(store, pool=POOL, name="Stock")
    assert rows_after(store, mark) == [
        Row("admin@localhost", "dm", "rename", POOL, "Ticker", None, "was “Stock”")
    ]


def test_a_case_only_rename_is_allowed(store: Store) -> None:
    register(store, "stock")
    renamed = addins.rename(store, ADMIN, pool=POOL, name="stock", new_name="Stock")
    assert renamed.result.name == "Stock"
    assert [e.action for e in audit_log(store)] == ["register", "rename"]


@pytest.mark.parametrize("new_name", ["Weather", "weather", "ＷＥＡＴＨＥＲ"])
def test_rename_onto_another_add_in_is_refused(store: Store, new_name: str) -> None:
    register(store, "Stock")
    register(store, "Weather", URL2)
    before = snapshot(store)
    with pytest.raises(CommandError) as caught:
        addins.rename(store, ADMIN, pool=POOL, name="Stock", new_name=new_name)
    assert caught.value.reason == f"An add-in named “Weather” already exists in {POOL}."
    assert snapshot(store) == before


# --- unregister ----------------------------------------------------------------------------


def test_unregister_an_unused_add_in(store: Store) -> None:
    register(store, "Stock")
    mark = addins.last_audit_id(store)

    removed = addins.unregister(store, ADMIN, pool=POOL, name="stock", force=False).result
    assert removed == addins.Removed("Stock", ())

    assert addins.list_addins(store, pool=POOL).total == 0
    assert rows_after(store, mark) == [
        Row("admin@localhost", "dm", "unregister", POOL, "Stock", None, URL)
    ]


def test_unregister_is_refused_with_the_rooms_that_use_it(store: Store) -> None:
    register(store, "Stock")
    addins.attach(store, ADMIN, room=ROOM_B, name="Stock")
    addins.attach(store, ADMIN, room=ROOM_A, name="Stock")
    before = snapshot(store)

    with pytest.raises(CommandError) as caught:
        addins.unregister(store, ADMIN, pool=POOL, name="Stock", force=False)

    assert caught.value.reason == (
        f"“Stock” is used by 2 rooms: {ROOM_A}, {ROOM_B}. "
        f"Detach it first, or add force to detach it from them."
    )
    assert snapshot(store) == before


def test_forced_unregister_detaches_each_room_with_its_own_row(store: Store) -> None:
    register(store, "Stock")
    addins.attach(store, ADMIN, room=ROOM_B, name="Stock")
    addins.attach(store, ADMIN, room=ROOM_A, name="Stock")
    assert addins.claim_announcement(store, room=ROOM_A, person="jid:p@localhost", cooldown_s=60)
    mark = addins.last_audit_id(store)

    removed = addins.unregister(store, SHELL, pool=POOL, name="Stock", force=True).result

    assert removed.rooms == (ROOM_A, ROOM_B)
    assert rows_after(store, mark) == [
        Row("root", "cli", "detach", POOL, "Stock", ROOM_A, addins.FORCED_DETACH),
        Row("root", "cli", "detach", POOL, "Stock", ROOM_B, addins.FORCED_DETACH),
        Row("root", "cli", "unregister", POOL, "Stock", None, URL),
    ]
    assert addins.room_info(store, ROOM_A).addin is None
    assert addins.room_info(store, ROOM_B).addin is None
    with Session(store.engine) as session:
        assert session.exec(select(Announcement)).all() == []
    # the name is free again
    assert register(store, "Stock", URL2).url == URL2


# --- list and show -------------------------------------------------------------------------


def test_list_pages_through_45_add_ins_in_case_insensitive_order(store: Store) -> None:
    names = [f"{'Addin' if i % 2 else 'addin'}{i:02d}" for i in range(45)]
    for name in reversed(names):
        register(store, name, f"https://a.example/{name}")
    register(store, "elsewhere", pool=OTHER)

    pages = [addins.list_addins(store, pool=POOL, page=n) for n in (1, 2, 3)]

    assert [len(p.items) for p in pages] == [PAGE_SIZE, PAGE_SIZE, 5]
    assert {(p.page, p.pages, p.total, p.pool) for p in pages} == {
        (1, 3, 45, POOL), (2, 3, 45, POOL), (3, 3, 45, POOL),
    }
    assert [name for p in pages for name, _url, _n in p.items] == names
    with pytest.raises(CommandError, match=r"^There are only 3 pages\.$"):
        addins.list_addins(store, pool=POOL, page=4)
    with pytest.raises(CommandError, match="Page numbers start at 1"):
        addins.list_addins(store, pool=POOL, page=0)


def test_list_orders_mixed_case_names_without_regard_to_case(store: Store) -> None:
    for name in ["beta", "Alpha", "GAMMA", "delta"]:
        register(store, name)
    listed = [name for name, _url, _n in addins.list_addins(store, pool=POOL).items]
    assert listed == ["Alpha", "beta", "delta", "GAMMA"]


def test_list_counts_the_rooms_using_each_add_in(store: Store) -> None:
    register(store, "Stock")
    register(store, "Weather", URL2)
    register(store, "Unused", "https://unused.example/")
    addins.attach(store, ADMIN, room=ROOM_A, name="Stock")
    addins.attach(store, ADMIN, room=ROOM_B, name="Stock")
    addins.attach(store, ADMIN, room=f"gamma@{POOL}", name="Weather")
    addins.set_joined(store, ADMIN, room=f"delta@{POOL}", joined=True)  # a room with none

    page = addins.list_addins(store, pool=POOL)

    assert page.items == (
        ("Stock", URL, 2), ("Unused", "https://unused.example/", 0), ("Weather", URL2, 1),
    )


def test_list_of_an_empty_pool(store: Store) -> None:
    assert addins.list_addins(store, pool=POOL) == addins.AddinPage(POOL, (), 1, 1, 0)


def test_show_tells_who_registered_it_and_the_rooms(store: Store) -> None:
    addins.register(store, SHELL, pool=POOL, name="Stock", url=URL)
    addins.attach(store, ADMIN, room=ROOM_B, name="Stock")
    addins.attach(store, ADMIN, room=ROOM_A, name="Stock")

    info = addins.show(store, pool=POOL, name="STOCK")

    assert (info.name, info.url, info.pool, info.created_by, info.rooms) == (
        "Stock", URL, POOL, "root", (ROOM_A, ROOM_B),
    )
    with pytest.raises(CommandError, match=f"^No add-in named “Stock” in {OTHER}.$"):
        addins.show(store, pool=OTHER, name="Stock")


# --- attach and detach ---------------------------------------------------------------------


def test_attach_writes_one_row_and_replaces_an_earlier_add_in(store: Store) -> None:
    register(store, "Stock")
    register(store, "Weather", URL2)
    mark = addins.last_audit_id(store)
    room_actor = Actor(f"{ROOM_A}/owner", "room")

    first = addins.attach(store, room_actor, room=ROOM_A, name="stock").result
    second = addins.attach(store, room_actor, room=ROOM_A, name="Weather").result

    assert first == RoomInfo(ROOM_A, "Stock", URL, False, None)
    assert second == RoomInfo(ROOM_A, "Weather", URL2, False, None)
    assert addins.room_info(store, ROOM_A) == second
    assert addins.show(store, pool=POOL, name="Stock").rooms == ()
    assert rows_after(store, mark) == [
        Row(f"{ROOM_A}/owner", "room", "attach", POOL, "Stock", ROOM_A, URL),
        Row(f"{ROOM_A}/owner", "room", "attach", POOL, "Weather", ROOM_A, URL2),
    ]


def test_attach_stores_its_times_exactly_as_the_orm_would(store: Store) -> None:
    """attach's prebuilt Core statements store what the ORM itself stores, byte for byte,
    and it reads back the same."""
    register(store, "Stock")
    assert addins.set_joined(store, ADMIN, room=ROOM_B, joined=True).result  # a row via SQLAlchemy
    before = datetime.now(UTC)
    info = addins.attach(store, ADMIN, room=ROOM_A, name="Stock").result
    after = datetime.now(UTC)
    with Session(store.engine) as session:
        room = session.exec(select(Room).where(Room.jid == ROOM_A)).one()
        newest = select(AuditEvent).order_by(col(AuditEvent.id).desc())
        entry = session.exec(newest).first()
        assert entry is not None
        attached, logged = room.attached_at, entry.at
        assert attached is not None
        assert (entry.action, entry.room, entry.addin, entry.detail) == (
            "attach", ROOM_A, "Stock", URL)
        # SQLAlchemy writes the same moment into the other room, through its own types.
        session.execute(update(Room).where(col(Room.jid) == ROOM_B).values(attached_at=attached))
        session.commit()
        as_text = text("SELECT jid, CAST(attached_at AS TEXT) FROM room")
        stored = dict(session.execute(as_text).all())
    assert stored[ROOM_A] == stored[ROOM_B]  # the same text in the database
    for moment in (attached, logged):
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        assert before <= moment <= after
    assert info.joined is False


def test_audit_ids_come_back_from_a_sqlite_without_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite before 3.35 has no INSERT ... RETURNING: the audit row's id then comes from
    the cursor, and the changes an operation returns still name the rows as stored."""
    sqlite = Store.open(f"sqlite:///{tmp_path}/old.db")
    try:
        sqlite.upgrade()
        monkeypatch.setattr(sqlite.engine.dialect, "insert_returning", False)
        sent: list[str] = []
        event.listen(sqlite.engine, "before_cursor_execute",
                     lambda _c, _cur, statement, *_rest: sent.append(statement))
        handed = [c.entry.id for c in addins.register(
            sqlite, ADMIN, pool=POOL, name="Stock", url=URL).changes]
        handed += [c.entry.id for c in addins.attach(
            sqlite, ADMIN, room=ROOM_A, name="Stock").changes]
        stored = [entry.id for entry in reversed(addins.audit(sqlite, limit=10))]
        assert handed == stored
        assert len(stored) == 2
        audit_inserts = [sql for sql in sent if sql.startswith("INSERT INTO auditevent")]
        assert len(audit_inserts) == 2
        assert not any("RETURNING" in sql for sql in audit_inserts)  # an old SQLite refuses it
    finally:
        sqlite.close()


def test_a_failing_statement_comes_out_as_sqlalchemys_error_and_rolls_back(
    store: Store,
) -> None:
    """What the unit of work tells apart: a clash (IntegrityError, or the sentence given for
    it), a busy or absent database (StoreBusy); either way nothing of the change stays."""
    values = {"id": 999_999, "at": datetime.now(UTC), "actor": "a", "via": "cli",
              "action": "test", "detail": ""}
    row = insert(AuditEvent)

    def add(action: str) -> Callable[[Unit], None]:
        def change(unit: Unit) -> None:
            unit.rows.execute(update(Room).values(joined=True))  # a statement before it
            unit.rows.execute(row, values | {"action": action})
        return change

    store.write(add("test"))
    with pytest.raises(IntegrityError):
        store.write(add("again"))
    with pytest.raises(CommandError, match="taken"):
        store.write(add("again"), conflict="taken")
    with Session(store.engine) as session:
        kept = session.get(AuditEvent, 999_999)
        assert kept is not None
        assert kept.action == "test"


def test_database_trouble_comes_out_as_store_busy(tmp_path: Path) -> None:
    away = Store.open(f"sqlite:///{tmp_path}/no/such/folder/x.db")
    try:
        with pytest.raises(StoreBusy):
            addins.register(away, ADMIN, pool=POOL, name="Stock", url=URL)
        with pytest.raises(StoreBusy):
            addins.list_addins(away, pool=POOL)
        problem = away.problem()
        assert problem is not None
        assert problem.startswith("database: OperationalError: unable to open database file")
    finally:
        away.close()


def test_a_change_returns_its_changes_as_stored_and_a_no_op_returns_none(store: Store) -> None:
    """What the announcer is handed: each audit row the change wrote, as the log holds it,
    with the rooms it concerns; nothing when nothing changed."""
    registered = addins.register(store, ADMIN, pool=POOL, name="Stock", url=URL)
    assert registered.changes == (Change(addins.audit(store, limit=1)[0]),)
    attached = addins.attach(store, ADMIN, room=ROOM_A, name="Stock")
    [change] = attached.changes
    assert change.entry == addins.audit(store, limit=1)[0]
    assert change.entry.action == "attach"
    assert change.rooms == (attached.result,) == (RoomInfo(ROOM_A, "Stock", URL, False, None),)
    updated = addins.update_url(store, ADMIN, pool=POOL, name="Stock", url=URL2)
    assert [c.rooms for c in updated.changes] == [(RoomInfo(ROOM_A, "Stock", URL2, False, None),)]
    joined = addins.set_joined(store, ADMIN, room=ROOM_A, joined=True)
    assert (joined.result, [c.entry.action for c in joined.changes]) == (True, ["join"])
    before = addins.last_audit_id(store)
    assert addins.set_joined(store, ADMIN, room=ROOM_A, joined=True) == Done(False, ())
    assert addins.set_joined(store, ADMIN, room=ROOM_B, joined=False) == Done(False, ())
    claimed = addins.claim_announcements(store, room=ROOM_A, people=["p"], cooldown_s=60)
    assert claimed.changes == ()  # a note of whom the bot told is no change to announce
    assert addins.last_audit_id(store) == before
    removed = addins.unregister(store, ADMIN, pool=POOL, name="Stock", force=True)
    assert [c.entry for c in removed.changes] == addins.changes_since(store, before)
    assert [c.entry.action for c in removed.changes] == ["detach", "unregister"]


def test_an_add_in_of_another_pool_cannot_be_attached(store: Store) -> None:
    register(store, "Stock", pool=OTHER)
    with pytest.raises(CommandError, match=f"No add-in named “Stock” in {POOL}"):
        addins.attach(store, ADMIN, room=ROOM_A, name="Stock")


def test_detach_writes_one_row(store: Store) -> None:
    register(store, "Stock")
    addins.attach(store, ADMIN, room=ROOM_A, name="Stock")
    mark = addins.last_audit_id(store)

    assert addins.detach(store, ADMIN, room=ROOM_A).result == "Stock"

    assert addins.room_info(store, ROOM_A) == RoomInfo(ROOM_A, None, None, False, None)
    assert rows_after(store, mark) == [
        Row("admin@localhost", "dm", "detach", POOL, "Stock", ROOM_A, "")
    ]


def test_room_info_of_an_unknown_room(store: Store) -> None:
    assert addins.room_info(store, ROOM_A) == RoomInfo(ROOM_A, None, None, False, None)


# --- rooms the bot serves ------------------------------------------------------------------


def test_join_leave_and_stop_each_write_one_row_and_repeats_write_none(store: Store) -> None:
    assert addins.set_joined(store, ADMIN, room=ROOM_A, joined=True).result is True
    assert addins.set_joined(store, ADMIN, room=ROOM_A, joined=True).result is False
    assert addins.list_rooms(store) == [RoomInfo(ROOM_A, None, None, True, None)]

    bot = Actor("addinbot@localhost", "bot")
    assert addins.set_joined(store, bot, room=ROOM_A, joined=False, reason="banned").result is True
    assert addins.set_joined(store, ADMIN, room=ROOM_A, joined=True).result is True
    assert addins.set_joined(store, ADMIN, room=ROOM_A, joined=False).result is True
    assert addins.set_joined(store, ADMIN, room=ROOM_A, joined=False).result is False

    assert rows_after(store, 0) == [
        Row("admin@localhost", "dm", "join", POOL, None, ROOM_A, ""),
        Row("addinbot@localhost", "bot", "stop", POOL, None, ROOM_A, "banned"),
        Row("admin@localhost", "dm", "join", POOL, None, ROOM_A, ""),
        Row("admin@localhost", "dm", "leave", POOL, None, ROOM_A, ""),
    ]


def test_leaving_a_room_never_known_changes_nothing(store: Store) -> None:
    before = snapshot(store)
    assert addins.set_joined(store, ADMIN, room=ROOM_A, joined=False).result is False
    assert snapshot(store) == before


def test_list_rooms_shows_served_rooms_and_rooms_with_an_add_in(store: Store) -> None:
    register(store, "Stock")
    addins.set_joined(store, ADMIN, room=ROOM_B, joined=True)
    addins.attach(store, ADMIN, room=ROOM_A, name="Stock")  # not served, but attached
    addins.set_joined(store, ADMIN, room=f"gone@{POOL}", joined=True)
    addins.set_joined(store, ADMIN, room=f"gone@{POOL}", joined=False)  # left, no add-in
    addins.set_joined(store, ADMIN, room=f"other@{OTHER}", joined=True)

    assert addins.list_rooms(store, pool=POOL) == [
        RoomInfo(ROOM_A, "Stock", URL, False, None),
        RoomInfo(ROOM_B, None, None, True, None),
    ]
    assert [r.jid for r in addins.list_rooms(store, joined_only=True)] == [
        ROOM_B, f"other@{OTHER}",
    ]
    assert [r.jid for r in addins.list_rooms(store, pool=OTHER)] == [f"other@{OTHER}"]


# --- announcements -------------------------------------------------------------------------


def test_claim_announcement_tells_each_person_once_per_cool_down(store: Store) -> None:
    register(store, "Stock")
    addins.attach(store, ADMIN, room=ROOM_A, name="Stock")
    mark = addins.last_audit_id(store)

    def claim(person: str, cooldown_s: int = 3600) -> RoomInfo | None:
        return addins.claim_announcement(
            store, room=ROOM_A, person=person, cooldown_s=cooldown_s
        )

    assert claim("jid:p@localhost") == RoomInfo(ROOM_A, "Stock", URL, False, None)
    assert claim("jid:p@localhost") is None
    assert claim("jid:q@localhost") is not None  # somebody else
    assert addins.claim_announcement(
        store, room=ROOM_B, person="jid:p@localhost", cooldown_s=3600
    ) is None  # a room without an add-in

    addins.update_url(store, ADMIN, pool=POOL, name="Stock", url=URL2)
    told = claim("jid:p@localhost")
    assert told is not None
    assert told.url == URL2
    assert claim("jid:p@localhost") is None

    addins.rename(store, ADMIN, pool=POOL, name="Stock", new_name="Ticker")
    assert claim("jid:p@localhost") is not None

    register(store, "Weather", "https://weather.example/")
    addins.attach(store, ADMIN, room=ROOM_A, name="Weather")
    assert claim("jid:p@localhost") is not None

    # claiming is not a change: no audit rows beyond the admin's own changes
    assert [r.action for r in rows_after(store, mark)] == [
        "update-url", "rename", "register", "attach",
    ]


def told_two_hours_ago(store: Store, person: str) -> None:
    """ROOM_A has the add-in Stock, and `person` was told it two hours ago."""
    register(store, "Stock")
    addins.attach(store, ADMIN, room=ROOM_A, name="Stock")
    assert addins.claim_announcement(store, room=ROOM_A, person=person, cooldown_s=3600)
    with Session(store.engine) as session:
        session.execute(update(Announcement).values(at=datetime.now(UTC) - timedelta(hours=2)))
        session.commit()


def test_claim_announcement_after_the_cool_down_tells_again(store: Store) -> None:
    told_two_hours_ago(store, "nick:p")
    assert addins.claim_announcement(store, room=ROOM_A, person="nick:p", cooldown_s=3600)
    assert not addins.claim_announcement(store, room=ROOM_A, person="nick:p", cooldown_s=3600)


@pytest.mark.postgres
def test_two_claims_of_one_stale_receipt_at_once_tell_the_person_once(
    postgres_store: Store,
) -> None:
    """Two processes (or two batches of one) claim the same person at the same moment, whose
    last receipt is older than the cool-down: one tells them, the other sees it and does
    not. Before, both read the old receipt, both renewed it (the second after the first
    committed, on PostgreSQL's READ COMMITTED), and both told: a joiner told twice."""
    store = postgres_store
    with store.engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE announcement, room, addin, pool, auditevent, "
                                   "lease RESTART IDENTITY CASCADE")
    told_two_hours_ago(store, "nick:p")

    first = store.engine.connect()  # the other claim, which renews the receipt now
    first.begin()
    first.execute(update(Announcement).values(at=datetime.now(UTC)))
    told: list[RoomInfo | None] = []
    second = threading.Thread(target=lambda: told.append(addins.claim_announcement(
        store, room=ROOM_A, person="nick:p", cooldown_s=3600)))
    second.start()
    with store.engine.connect() as watch:  # until the second waits for the first's lock
        for _ in range(500):
            waiting = watch.exec_driver_sql(
                "SELECT count(*) FROM pg_locks WHERE NOT granted").scalar_one()
            if waiting or not second.is_alive():
                break
            threading.Event().wait(0.01)
    first.commit()
    first.close()
    second.join(10)
    assert told == [None]  # the first told them; the second does not


def test_claim_announcement_with_no_cool_down_always_tells(store: Store) -> None:
    register(store, "Stock")
    addins.attach(store, ADMIN, room=ROOM_A, name="Stock")
    for _ in range(3):
        assert addins.claim_announcement(store, room=ROOM_A, person="id:x", cooldown_s=0)


# --- the audit log -------------------------------------------------------------------------


def test_changes_since_is_oldest_first_and_audit_newest_first(store: Store) -> None:
    register(store, "One")
    register(store, "Two")
    mark = addins.last_audit_id(store)
    register(store, "Three")
    register(store, "Four")

    assert [e.addin for e in addins.changes_since(store, 0)] == ["One", "Two", "Three", "Four"]
    assert [e.addin for e in addins.changes_since(store, mark)] == ["Three", "Four"]
    assert [e.addin for e in addins.changes_since(store, 0, limit=1)] == ["One"]
    assert addins.changes_since(store, addins.last_audit_id(store)) == []
    assert [e.addin for e in addins.audit(store, limit=3)] == ["Four", "Three", "Two"]
    ids = [e.id for e in addins.changes_since(store, 0)]
    assert ids == sorted(ids)
    assert addins.last_audit_id(store) == ids[-1]
    assert all(e.at.tzinfo is not None for e in addins.audit(store))


def test_an_empty_audit_log(store: Store) -> None:
    assert addins.audit(store) == []
    assert addins.last_audit_id(store) == 0


# --- every refusal changes nothing ---------------------------------------------------------

Attempt = Callable[[Store], object]

REFUSALS: list[tuple[str, Attempt, str]] = [
    ("register taken", lambda e: register(e, "stock"), "already exists"),
    ("register bad url", lambda e: register(e, "New", "ftp://x.example/"), "URL refused"),
    ("register bad name", lambda e: register(e, "New\u200b"), "invisible"),
    ("update unknown", lambda e: addins.update_url(e, ADMIN, pool=POOL, name="Nope", url=URL2),
     "No add-in named “Nope”"),
    ("update unknown pool", lambda e: addins.update_url(e, ADMIN, pool=OTHER, name="Stock",
                                                        url=URL2), "No add-in named"),
    ("update same url", lambda e: addins.update_url(e, ADMIN, pool=POOL, name="Stock", url=URL),
     "already has that URL"),
    ("update bad url", lambda e: addins.update_url(e, ADMIN, pool=POOL, name="Stock",
                                                   url="https://u:p@x.example/"), "URL refused"),
    ("rename clash", lambda e: addins.rename(e, ADMIN, pool=POOL, name="Stock",
                                             new_name="WEATHER"), "already exists"),
    ("rename same", lambda e: addins.rename(e, ADMIN, pool=POOL, name="Stock",
                                            new_name="Stock"), "already has that name"),
    ("rename bad", lambda e: addins.rename(e, ADMIN, pool=POOL, name="Stock", new_name=" x"),
     "New name must not start or end with white space."),
    ("rename unknown", lambda e: addins.rename(e, ADMIN, pool=POOL, name="Nope", new_name="N"),
     "No add-in named"),
    ("unregister used", lambda e: addins.unregister(e, ADMIN, pool=POOL, name="Stock",
                                                    force=False), "is used by 1 room:"),
    ("unregister unknown", lambda e: addins.unregister(e, ADMIN, pool=POOL, name="Nope",
                                                       force=True), "No add-in named"),
    ("attach unknown", lambda e: addins.attach(e, ADMIN, room=ROOM_B, name="Nope"),
     "No add-in named"),
    ("attach again", lambda e: addins.attach(e, ADMIN, room=ROOM_A, name="stock"),
     "already has the add-in “Stock”"),
    ("detach none", lambda e: addins.detach(e, ADMIN, room=f"served@{POOL}"), "has no add-in"),
    ("detach unknown", lambda e: addins.detach(e, ADMIN, room=f"never@{POOL}"), "has no add-in"),
    ("list past the end", lambda e: addins.list_addins(e, pool=POOL, page=2), "only 1 page"),
    ("show unknown", lambda e: addins.show(e, pool=POOL, name="Nope"), "No add-in named"),
]


@pytest.mark.parametrize(
    ("attempt", "reason"), [(a, r) for _, a, r in REFUSALS], ids=[i for i, _, _ in REFUSALS]
)
def test_a_refusal_leaves_every_table_unchanged(
    store: Store, attempt: Attempt, reason: str
) -> None:
    register(store, "Stock")
    register(store, "Weather", URL2)
    addins.attach(store, ADMIN, room=ROOM_A, name="Stock")
    addins.set_joined(store, ADMIN, room=f"served@{POOL}", joined=True)
    assert addins.claim_announcement(store, room=ROOM_A, person="nick:p", cooldown_s=60)
    before = snapshot(store)

    with pytest.raises(CommandError) as caught:
        attempt(store)

    assert reason in caught.value.reason
    assert snapshot(store) == before


# --- random sequences of changes (SQLite) --------------------------------------------------

# Valid names that collide once case and width are folded, so changes meet each other ...
FOLDING_NAMES = [
    "Stock", "stock", "ＳＴＯＣＫ", "Straße", "STRASSE", "Café", "Cafe\u0301", "pool", "force",
    "Ǆ", "ǅ", "ﬃ", "ffi", "x" * 64, "'; DROP TABLE addin; --",
]
# ... and names and URLs that must be refused.
HOSTILE_NAMES = [
    " lead", "trail ", "zero\u200bwidth", "bidi\u202eevil", "", "x" * 65, "tab\tname",
    "new\nline", "\ufdfa" * 20,
]
GOOD_URLS = [
    "https://a.example/", "HTTPS://A.EXAMPLE/", "http://b.example/x?q=<script>", "https://例え.jp/",
    "https://bücher.example/#top", "http://127.0.0.1:8080/x", "https://[::1]/", "https://c.example/",
]
BAD_URLS = [
    "javascript:alert(1)", "https://user:pw@x.example/", "https://x.example/\u202e", "",
    "https://xn--80ak6aa92e.com/",
]
ROOMS_OF = {POOL: [ROOM_A, ROOM_B], OTHER: [f"gamma@{OTHER}"]}

# Mostly valid input, so that changes happen and meet each other; some refused; some random.
any_names = st.one_of(
    st.sampled_from(FOLDING_NAMES * 3 + HOSTILE_NAMES), st.text(max_size=70)
)
any_urls = st.one_of(st.sampled_from(GOOD_URLS * 3 + BAD_URLS), st.text(max_size=40))
any_pools = st.sampled_from(list(ROOMS_OF))
any_rooms = st.sampled_from([room for rooms in ROOMS_OF.values() for room in rooms])


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    sqlite = Store.open(f"sqlite:///{tmp_path_factory.mktemp('stateful')}/s.db")
    sqlite.upgrade()
    yield sqlite
    sqlite.close()


def test_random_changes_keep_the_audit_log_and_the_names_consistent(
    sqlite_engine: Store,
) -> None:
    """Register, rename, update, unregister, attach and detach in any order, with hostile
    input: one audit row per change, refusals change nothing, names stay unique per pool."""
    store = sqlite_engine

    class Changes(RuleBasedStateMachine):
        added = Bundle("added")  # (pool, name) of add-ins registered or renamed to

        def __init__(self) -> None:
            super().__init__()
            with store.engine.begin() as connection:
                for table in ("announcement", "room", "addin", "pool", "auditevent"):
                    connection.exec_driver_sql(f"DELETE FROM {table}")  # noqa: S608
            self.changes = 0

        def attempt(
            self, change: Callable[[], Done[Any]], rows: Callable[[Any], int] = lambda _: 1
        ) -> bool:
            """Run a change; count its audit rows (`rows` of its result), which are the
            changes it returns; or check that a refusal changed nothing."""
            before = snapshot(store)
            try:
                done = change()
            except CommandError:
                assert snapshot(store) == before
                return False
            returned = [c.entry for c in done.changes]
            assert len(returned) == rows(done.result)
            assert returned == audit_log(store)[self.changes:]
            self.changes += len(returned)
            return True

        @rule(target=added, pool=any_pools, name=any_names, url=any_urls)
        def register(self, pool: str, name: str, url: str) -> object:
            def change() -> Done[Any]:
                return addins.register(store, ADMIN, pool=pool, name=name, url=url)

            return (pool, name) if self.attempt(change) else multiple()

        @rule(target=added, addin=added, new_name=any_names)
        def rename(self, addin: tuple[str, str], new_name: str) -> object:
            pool, name = addin

            def change() -> Done[Any]:
                return addins.rename(store, ADMIN, pool=pool, name=name, new_name=new_name)

            return (pool, new_name) if self.attempt(change) else multiple()

        @rule(addin=added, url=any_urls)
        def update(self, addin: tuple[str, str], url: str) -> None:
            pool, name = addin

            def change() -> Done[Any]:
                return addins.update_url(store, ADMIN, pool=pool, name=name, url=url)

            self.attempt(change)

        @rule(addin=added, force=st.booleans())
        def unregister(self, addin: tuple[str, str], force: bool) -> None:
            pool, name = addin
            self.attempt(
                lambda: addins.unregister(store, ADMIN, pool=pool, name=name, force=force),
                lambda removed: 1 + len(removed.rooms),
            )

        @rule(addin=added, data=st.data())
        def attach(self, addin: tuple[str, str], data: st.DataObject) -> None:
            pool, name = addin
            room = data.draw(st.one_of(st.sampled_from(ROOMS_OF[pool]), any_rooms))

            def change() -> Done[Any]:
                return addins.attach(store, ADMIN, room=room, name=name)

            self.attempt(change)

        @rule(room=any_rooms)
        def detach(self, room: str) -> None:
            def change() -> Done[Any]:
                return addins.detach(store, ADMIN, room=room)

            self.attempt(change)

        @invariant()
        def one_audit_row_per_change(self) -> None:
            assert len(audit_log(store)) == self.changes

        @invariant()
        def each_pool_knows_how_many_add_ins_it_has(self) -> None:
            with store.engine.connect() as connection:
                kept = dict(connection.exec_driver_sql("SELECT id, addin_count FROM pool").all())
                counted = dict(connection.exec_driver_sql(
                    "SELECT pool_id, count(*) FROM addin GROUP BY pool_id"
                ).all())
            assert {pool: n for pool, n in kept.items() if n} == counted

        @invariant()
        def names_are_unique_per_pool_and_valid(self) -> None:
            with Session(store.engine) as session:
                rows = session.exec(select(Addin)).all()
            keys = [(row.pool_id, row.name_key) for row in rows]
            assert len(keys) == len(set(keys))
            for row in rows:
                assert row.name_key == names.name_key(row.name)
                assert names.validate_name(row.name) == row.name

    run_state_machine_as_test(
        Changes,
        settings=settings(
            max_examples=50, stateful_step_count=30, deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_audit_ids_follow_commit_order_when_changes_overlap(store: Store) -> None:
    """The follower reads the audit log by id: a change that took its id first must also
    commit first, or a follower that saw the later id would pass the earlier one over."""
    addins.register(store, ADMIN, pool=POOL, name="Stock", url="https://a.example.org/")
    cursor = addins.last_audit_id(store)
    inside, release = threading.Event(), threading.Event()

    def slow_change(unit: Unit) -> None:
        audit.record(unit, ADMIN, "attach", pool=POOL, room=f"slow@{POOL}")
        inside.set()  # its audit row has its id; the transaction is still open
        assert release.wait(10)

    slow = threading.Thread(target=store.write, args=(slow_change,))
    slow.start()
    assert inside.wait(10)
    later = threading.Thread(
        target=addins.attach, args=(store, ADMIN), kwargs={"room": ROOM_A, "name": "Stock"}
    )
    later.start()
    later.join(0.5)
    # The later change waits its turn (on SQLite and PostgreSQL alike) ...
    assert later.is_alive()
    assert addins.changes_since(store, cursor) == []
    release.set()
    slow.join(10)
    later.join(10)
    # ... so reading from the cursor onwards misses nothing, in commit order.
    rooms = [change.room for change in addins.changes_since(store, cursor)]
    assert rooms == [f"slow@{POOL}", ROOM_A]


def test_the_upgrade_to_0002_counts_the_add_ins_already_there(store: Store) -> None:
    """A database made before pool.addin_count existed gets its pools' counts."""
    command.downgrade(alembic_config(store.engine), "0001")
    with store.engine.begin() as connection:  # add-ins as version 0001 wrote them
        for pool, names in ((POOL, ("A", "B", "C")), (OTHER, ("D",))):
            pool_id = connection.execute(
                text("INSERT INTO pool (name) VALUES (:name) RETURNING id"), {"name": pool}
            ).scalar_one()
            for name in names:
                connection.execute(text(
                    "INSERT INTO addin (pool_id, name, name_key, url, created_by, created_at,"
                    " revision) VALUES (:pool, :name, :key, :url, 'admin', :at, 1)"
                ), {"pool": pool_id, "name": name, "key": name.lower(),
                    "url": f"https://{name.lower()}.example.org/", "at": datetime.now(UTC)})
    store.upgrade()
    assert current_revision(store.engine) == head(store.engine)
    assert addins.list_addins(store, pool=POOL).total == 3
    assert addins.list_addins(store, pool=OTHER).total == 1
    register(store, "E")
    assert addins.list_addins(store, pool=POOL).total == 4
