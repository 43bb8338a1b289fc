"""Who asked not to be sent the private link on joining (`mute`), in one room or in all."""

from __future__ import annotations

from sqlalchemy import bindparam, delete, insert
from sqlalchemy import select as columns
from sqlmodel import col

from bot.i18n import msg
from bot.names import pool_of
from bot.values import Actor, Done
from store import audit
from store.handle import Store
from store.models import Mute, utcnow
from store.unit import Unit

ALL_ROOMS = "*"  # a mute for every room (`mute all` by direct message)

_FIND = columns(col(Mute.id)).where(
    col(Mute.room) == bindparam("room"), col(Mute.person) == bindparam("person")
)
_NEW = insert(Mute)
_DROP = delete(Mute).where(col(Mute.id) == bindparam("id"))
_EVERY = columns(col(Mute.room), col(Mute.person))


def set_muted(
    store: Store, actor: Actor, *, room: str, person: str, muted: bool
) -> Done[bool]:
    """Mute (or unmute) `person` in `room` (or ALL_ROOMS), audited as `mute` or `unmute`;
    the result is False (nothing recorded) when it already was so."""
    where = None if room == ALL_ROOMS else room

    def change(unit: Unit) -> bool:
        rows = unit.rows
        found = rows.execute(_FIND, {"room": room, "person": person}).scalar()
        if (found is not None) == muted:
            return False
        if muted:
            rows.execute(_NEW, {"room": room, "person": person, "at": utcnow()})
        else:
            rows.execute(_DROP, {"id": found})
        audit.record(
            unit, actor, "mute" if muted else "unmute", pool=pool_of(where) if where else None,
            room=where, detail=person,  # no room: every room
        )
        return True

    return store.write(change, conflict=msg("That was just changed; try again."))


def muted(store: Store, *, room: str, person: str) -> tuple[bool, bool]:
    """Whether `person` is muted in `room`, and whether everywhere."""
    with store.reading() as rows:
        found = set(rows.execute(
            columns(col(Mute.room)).where(
                col(Mute.person) == person, col(Mute.room).in_([room, ALL_ROOMS])
            )
        ).scalars())
    return room in found, ALL_ROOMS in found



def every_mute(store: Store) -> set[tuple[str, str]]:
    """Every mute, as (room or ALL_ROOMS, person): read when the bot starts."""
    with store.reading() as rows:
        return {(room, person) for room, person in rows.execute(_EVERY)}
