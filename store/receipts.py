"""The receipts of whom the bot told a room's add-in, for the join cool-down."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, insert, update
from sqlalchemy import select as columns
from sqlmodel import col

from bot.errors import CommandError
from bot.values import Done, RoomInfo
from store.audit import utc
from store.handle import Store
from store.models import Addin, Announcement, Room, utcnow
from store.unit import Unit

Claimed = tuple[RoomInfo | None, tuple[str, ...]]

_ROOM = (
    columns(col(Room.id), col(Room.joined), col(Room.stopped_reason), col(Addin.id),
            col(Addin.name), col(Addin.url), col(Addin.revision))
    .join(Addin, col(Addin.id) == col(Room.addin_id))
    .where(col(Room.jid) == bindparam("room"))
)
# Locked as read (FOR UPDATE; SQLite's writers already take turns from BEGIN IMMEDIATE): a
# claim of the same people at the same moment waits, then reads the receipts as renewed,
# instead of renewing them too and telling them twice. (A receipt not there yet is the
# unique constraint's: the second insert fails, and that claim looks again.)
_RECEIPTS = (
    columns(col(Announcement.id), col(Announcement.person), col(Announcement.addin_id),
            col(Announcement.revision), col(Announcement.at))
    .where(col(Announcement.room_id) == bindparam("room_id"),
           col(Announcement.person).in_(bindparam("people", expanding=True)))
    .order_by(col(Announcement.id))  # locked in one order by all: no deadlock between two
    .with_for_update()
)
_NEW = insert(Announcement)
_RENEW = (
    update(Announcement).where(col(Announcement.id).in_(bindparam("ids", expanding=True)))
    .values(addin_id=bindparam("addin"), revision=bindparam("rev"), at=bindparam("when"))
)
_TOLD = "told"  # the conflict sentence: another process noted one of them at the same moment


def claim(store: Store, *, room: str, people: Sequence[str], cooldown_s: int) -> Done[Claimed]:
    """For people who just joined `room`: the room's add-in (None: it has none) and those of
    them to be told it now, noted as told; the others were told this same add-in within the
    cool-down. One transaction for all of them. A note is no change to announce: the
    changes are always none."""
    wanted = list(dict.fromkeys(people))

    def change(unit: Unit) -> Claimed:
        rows = unit.rows
        found = rows.execute(_ROOM, {"room": room}).first()
        if found is None:
            return None, ()
        room_id, joined, reason, addin_id, name, url, revision = found
        receipts = {
            person: (receipt_id, told_addin, told_revision, utc(at))
            for receipt_id, person, told_addin, told_revision, at in rows.execute(
                _RECEIPTS, {"room_id": room_id, "people": wanted}
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
            rows.execute(_NEW, [
                {"room_id": room_id, "person": person, "addin_id": addin_id,
                 "revision": revision, "at": now}
                for person in new
            ])
        if renewed:
            rows.execute(_RENEW, {"ids": renewed, "addin": addin_id, "rev": revision, "when": now})
        return RoomInfo(room, name, url, joined, reason), tuple(told)

    for _ in range(2):
        try:
            return store.write(change, conflict=_TOLD, audited=False)
        except CommandError:
            continue  # another process noted one of them at the same moment: look again
    return Done((None, ()))
