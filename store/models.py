"""The tables: pools, add-ins, rooms, audit events and announcement receipts."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Pool(SQLModel, table=True):
    """One MUC service, e.g. conference.example.org."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=255, unique=True)
    # How many add-ins it has, kept by register and unregister: `list` says it on every
    # page, and counting 10,000 index entries each time costs PostgreSQL over a millisecond.
    addin_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class Addin(SQLModel, table=True):
    """A registered add-in: a name unique per pool (case-insensitively, and no look-alike of
    another: its UTS #39 skeleton is unique too) and its URL."""

    __table_args__ = (
        UniqueConstraint("pool_id", "name_key", name="uq_addin_pool_name"),
        UniqueConstraint("pool_id", "name_skeleton", name="uq_addin_pool_skeleton"),
    )

    id: int | None = Field(default=None, primary_key=True)
    pool_id: int = Field(foreign_key="pool.id", index=True)
    name: str = Field(max_length=64)
    name_key: str = Field(max_length=256)
    name_skeleton: str = Field(max_length=256)
    url: str = Field(max_length=2048)
    created_by: str = Field(max_length=3071)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    revision: int = 1


class Room(SQLModel, table=True):
    """A room the bot knows: served (joined) or merely carrying an attachment."""

    id: int | None = Field(default=None, primary_key=True)
    jid: str = Field(max_length=3071, unique=True)
    pool_id: int = Field(foreign_key="pool.id", index=True)
    addin_id: int | None = Field(default=None, foreign_key="addin.id", index=True)
    joined: bool = False
    stopped_reason: str | None = Field(default=None, max_length=255)
    attached_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    # `!addin pin on|off`; None: the configuration's announce.pin decides.
    pin: bool | None = Field(default=None)
    # The tail the bot last wrote on the room's subject (`Name: URL`), so that it strips
    # only what it wrote itself, even after a restart.
    pin_tail: str | None = Field(default=None, max_length=4096)


class RoomManager(SQLModel, table=True):
    """A JID a room's owners named as one of its managers (`managers add`)."""

    __table_args__ = (UniqueConstraint("room_id", "jid", name="uq_roommanager_jid"),)

    id: int | None = Field(default=None, primary_key=True)
    room_id: int = Field(foreign_key="room.id", index=True)
    jid: str = Field(max_length=3071)
    added_by: str = Field(max_length=3071)
    added_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class Mute(SQLModel, table=True):
    """Someone who asked not to be sent the private link on joining: in one room, or in
    every room (`room` is ALL_ROOMS). `person` is as bot.rooms.Occupant.person says it:
    `jid:<bare JID>` or `id:<occupant id>`."""

    __table_args__ = (UniqueConstraint("room", "person", name="uq_mute_person"),)

    id: int | None = Field(default=None, primary_key=True)
    room: str = Field(max_length=3071, index=True)
    person: str = Field(max_length=3071)
    at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class AuditEvent(SQLModel, table=True):
    """One change: when, who, via what, what, and on which pool, add-in and room."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True), index=True)
    actor: str = Field(max_length=3071)
    via: str = Field(max_length=16)
    action: str = Field(max_length=32, index=True)
    pool: str | None = Field(default=None, max_length=255)
    addin: str | None = Field(default=None, max_length=64)
    room: str | None = Field(default=None, max_length=3071)
    detail: str = Field(default="", max_length=4096)


class Announcement(SQLModel, table=True):
    """The last time one person was told a room's add-in, for the join cool-down."""

    __table_args__ = (UniqueConstraint("room_id", "person", name="uq_announcement_person"),)

    id: int | None = Field(default=None, primary_key=True)
    room_id: int = Field(foreign_key="room.id", index=True)
    person: str = Field(max_length=3071)
    addin_id: int
    revision: int
    at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class Lease(SQLModel, table=True):
    """Who serves what while several processes share the database (store.leases): a room
    ("room", its JID), the desk that answers direct messages ("desk", ""), or a live process
    ("process", its id). A lease not renewed by `expires` (the database's clock) is free; a
    released one keeps its row with no holder, so a room served before is known as such."""

    kind: str = Field(primary_key=True, max_length=16)
    key: str = Field(primary_key=True, max_length=3071)
    holder: str | None = Field(default=None, max_length=64)
    expires: datetime = Field(sa_type=DateTime(timezone=True))
