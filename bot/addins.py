"""The add-in operations: register, update, rename, unregister, list, show, attach, detach,
join, leave, audit.

Chat, the Control Panel and the command line call these same functions, so the rules and
the audit trail are the same whichever way a change arrives. Each is a plain function of
(store, actor, arguments). A change returns `Done`: its result and the changes it committed
(each with its audit row, written in the same transaction), for the caller to hand to the
announcer; a refusal raises CommandError and changes nothing. They are blocking (they talk
to the database): the bot runs them off the event loop.

The checks of the input itself (names, URLs, page numbers) are here; the queries, and the
refusals that depend on what is stored, are store/'s.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.errors import CommandError
from bot.i18n import msg
from bot.names import validate_name
from bot.urls import validate_url
from bot.values import (
    Actor,
    AddinInfo,
    AddinPage,
    AuditEntry,
    Change,
    Done,
    Listed,
    Planned,
    Removed,
    RoomInfo,
    Row,
)
from store import Store, mutes, receipts, rooms
from store import addins as stored
from store import audit as log
from store.addins import FORCED_DETACH, PAGE_SIZE

__all__ = [
    "ALL_ROOMS", "FORCED_DETACH", "PAGE_SIZE", "all_addins", "attach", "audit",
    "changes_since", "changes_to_announce", "claim_announcement", "claim_announcements",
    "detach", "every_manager", "import_rows", "last_audit_id", "list_addins", "list_rooms",
    "managers", "muted", "record", "register", "rename", "room_info", "set_joined",
    "set_managers", "set_muted", "set_pin", "set_pin_tail", "show", "unregister",
    "update_url",
]
ALL_ROOMS = mutes.ALL_ROOMS

# --- changes to add-ins --------------------------------------------------------------------


def register(store: Store, actor: Actor, *, pool: str, name: str, url: str) -> Done[AddinInfo]:
    return stored.register(
        store, actor, pool=pool, name=validate_name(name), url=validate_url(url)
    )


def update_url(store: Store, actor: Actor, *, pool: str, name: str, url: str) -> Done[AddinInfo]:
    return stored.update_url(store, actor, pool=pool, name=name, url=validate_url(url))


def rename(
    store: Store, actor: Actor, *, pool: str, name: str, new_name: str
) -> Done[AddinInfo]:
    new_name = validate_name(new_name, what=msg("New name"))
    return stored.rename(store, actor, pool=pool, name=name, new_name=new_name)


def unregister(
    store: Store, actor: Actor, *, pool: str, name: str, force: bool, spelled: str = "force"
) -> Done[Removed]:
    """Remove an add-in; with `force` first detach it from the rooms using it. `spelled`:
    how the asker's front end spells force, for the refusal that names it."""
    return stored.unregister(store, actor, pool=pool, name=name, force=force, spelled=spelled)


def import_rows(
    store: Store, actor: Actor, rows: Sequence[Row], *, dry_run: bool = False
) -> Done[tuple[Planned, ...]]:
    """Register or update many add-ins at once (rows checked by bot.bulk): all of them in
    one transaction, one audit row per change, or none (ImportRefused, by line). `dry_run`:
    what would change, and nothing does."""
    return stored.import_rows(store, actor, rows, dry_run=dry_run)


# --- rooms ---------------------------------------------------------------------------------


def attach(store: Store, actor: Actor, *, room: str, name: str) -> Done[RoomInfo]:
    return rooms.attach(store, actor, room=room, name=name)


def detach(store: Store, actor: Actor, *, room: str) -> Done[str]:
    """Detach the room's add-in; the result is the name it had."""
    return rooms.detach(store, actor, room=room)


def set_joined(
    store: Store, actor: Actor, *, room: str, joined: bool, reason: str | None = None
) -> Done[bool]:
    """Remember (or forget) that the bot serves `room`; the result is False (and there are
    no changes) if nothing changed."""
    return rooms.set_joined(store, actor, room=room, joined=joined, reason=reason)


def managers(store: Store, room: str) -> tuple[str, ...]:
    """The JIDs the owners of `room` named as its managers."""
    return rooms.managers(store, room)


def every_manager(store: Store) -> dict[str, frozenset[str]]:
    return rooms.every_manager(store)


def set_managers(
    store: Store, actor: Actor, *, room: str, add: Sequence[str], remove: Sequence[str]
) -> Done[tuple[str, ...]]:
    """Name and unname managers of `room` (bare JIDs, checked by the caller)."""
    return rooms.set_managers(store, actor, room=room, add=add, remove=remove)


def set_pin(store: Store, actor: Actor, *, room: str, pin: bool) -> Done[RoomInfo]:
    return rooms.set_pin(store, actor, room=room, pin=pin)


def pinned(store: Store, *, default: bool) -> list[RoomInfo]:
    """The rooms whose subject carries, or should carry, the add-in (read at start)."""
    return rooms.pinned(store, default=default)


def set_pin_tail(store: Store, *, room: str, tail: str | None) -> None:
    rooms.set_pin_tail(store, room=room, tail=tail)


def set_muted(
    store: Store, actor: Actor, *, room: str, person: str, muted: bool
) -> Done[bool]:
    """`mute` (or `unmute`) `person` in `room`, or in every room (ALL_ROOMS)."""
    return mutes.set_muted(store, actor, room=room, person=person, muted=muted)


def every_mute(store: Store) -> set[tuple[str, str]]:
    """Every mute, as (room or ALL_ROOMS, person)."""
    return mutes.every_mute(store)


def muted(store: Store, *, room: str, person: str) -> tuple[bool, bool]:
    """Whether `person` is muted in `room`, and whether in every room."""
    return mutes.muted(store, room=room, person=person)


def record(
    store: Store, actor: Actor, action: str, *, room: str | None = None, detail: str = ""
) -> Done[None]:
    """An audit row for something that changed nothing else (an invitation declined)."""
    return rooms.record(store, actor, action, room=room, detail=detail[:4096])


def claim_announcements(
    store: Store, *, room: str, people: Sequence[str], cooldown_s: int
) -> Done[tuple[RoomInfo | None, tuple[str, ...]]]:
    """For people who just joined `room`: the room's add-in (None: it has none) and those of
    them to be told it now, noted as told; the others were told this same add-in within the
    cool-down. One transaction for all of them, however many arrive at once. The notes are
    not changes to announce: none are returned."""
    return receipts.claim(store, room=room, people=people, cooldown_s=cooldown_s)


def claim_announcement(
    store: Store, *, room: str, person: str, cooldown_s: int
) -> RoomInfo | None:
    """The room's add-in if `person` is to be told it now (and note that they were), or None:
    no add-in, or they were told this same add-in within the cool-down."""
    done = claim_announcements(store, room=room, people=[person], cooldown_s=cooldown_s)
    info, told = done.result
    return info if told else None


# --- reading -------------------------------------------------------------------------------


def room_info(store: Store, room: str) -> RoomInfo:
    return rooms.info(store, room)


def list_rooms(
    store: Store, *, pool: str | None = None, joined_only: bool = False,
    managers: bool = False,
) -> list[RoomInfo]:
    return rooms.known(store, pool=pool, joined_only=joined_only, managers=managers)


def list_addins(store: Store, *, pool: str, page: int = 1) -> AddinPage:
    if page < 1:
        raise CommandError(msg("Page numbers start at 1."))
    return stored.page(store, pool=pool, number=page)


def all_addins(store: Store, *, pools: Sequence[str]) -> list[Listed]:
    """Every add-in of `pools`, by pool and name, with how many rooms use each."""
    return stored.every(store, pools=pools)


def show(store: Store, *, pool: str, name: str) -> AddinInfo:
    return stored.show(store, pool=pool, name=name)


def audit(store: Store, *, limit: int = 20) -> list[AuditEntry]:
    """Newest first: the last `limit` changes."""
    return log.newest(store, limit)


def changes_since(store: Store, after_id: int, *, limit: int = 500) -> list[AuditEntry]:
    """Oldest first: the changes recorded after `after_id`."""
    return log.since(store, after_id, limit)


def changes_to_announce(store: Store, after_id: int, *, limit: int = 500) -> list[Change]:
    """Oldest first: the changes after `after_id`, each with the rooms it concerns, in one
    look at the database (for the announcer's follower)."""
    return log.to_announce(store, after_id, limit)


def last_audit_id(store: Store) -> int:
    return log.last_id(store)
