"""The store of issue 14 (named managers, the subject pin, mutes), on SQLite and PostgreSQL:
each change audited, refused without a change when it changes nothing."""

from __future__ import annotations

import pytest

from bot import addins
from bot.errors import CommandError
from bot.values import Actor
from store import Store

POOL = "conference.localhost"
ROOM = f"alpha@{POOL}"
OTHER = f"beta@{POOL}"
OWNER = Actor("olivia@localhost", "room")
URL = "https://stocks.example.org/panel"


def actions(store: Store) -> list[tuple[str, str | None, str]]:
    return [(e.action, e.room, e.detail) for e in addins.audit(store, limit=20)]


def test_named_managers_are_per_room_and_audited(store: Store) -> None:
    done = addins.set_managers(store, OWNER, room=ROOM, add=["nora@localhost"], remove=[])
    assert done.result == ("nora@localhost",)
    assert [c.entry.action for c in done.changes] == ["manager-add"]
    assert addins.managers(store, ROOM) == ("nora@localhost",)
    assert addins.managers(store, OTHER) == ()
    assert addins.every_manager(store) == {ROOM: frozenset({"nora@localhost"})}
    with pytest.raises(CommandError, match="already a manager"):
        addins.set_managers(store, OWNER, room=ROOM, add=["nora@localhost"], remove=[])
    with pytest.raises(CommandError, match="is not a named manager"):
        addins.set_managers(store, OWNER, room=OTHER, add=[], remove=["nora@localhost"])
    # A room known only for its managers is listed, with them.
    (listed,) = addins.list_rooms(store, managers=True)
    assert (listed.jid, listed.managers, listed.joined) == (ROOM, ("nora@localhost",), False)

    addins.set_managers(store, OWNER, room=ROOM, add=[], remove=["nora@localhost"])
    assert addins.managers(store, ROOM) == ()
    assert actions(store)[:2] == [
        ("manager-remove", ROOM, "nora@localhost"), ("manager-add", ROOM, "nora@localhost")
    ]


def test_the_pin_and_the_tail_it_wrote_are_kept(store: Store) -> None:
    addins.register(store, OWNER, pool=POOL, name="Stock", url=URL)
    addins.attach(store, OWNER, room=ROOM, name="Stock")
    done = addins.set_pin(store, OWNER, room=ROOM, pin=True)
    (change,) = done.changes
    assert (change.entry.action, change.entry.detail) == ("pin", "on")
    assert change.rooms[0].pin is True
    assert change.rooms[0].addin == "Stock"
    with pytest.raises(CommandError, match="already pinned"):
        addins.set_pin(store, OWNER, room=ROOM, pin=True)
    addins.set_pin_tail(store, room=ROOM, tail=f"Stock: {URL}")
    assert addins.room_info(store, ROOM).pin_tail == f"Stock: {URL}"
    # A detach carries the room as it is left, with the tail to take off.
    (detached,) = addins.detach(store, OWNER, room=ROOM).changes
    assert detached.rooms[0].addin is None
    assert detached.rooms[0].pin_tail == f"Stock: {URL}"


def test_a_mute_is_per_room_or_everywhere(store: Store) -> None:
    bob, eve = "jid:bob@localhost", "id:xyz"
    assert addins.set_muted(store, OWNER, room=ROOM, person=bob, muted=True).result
    assert not addins.set_muted(store, OWNER, room=ROOM, person=bob, muted=True).result
    done = addins.set_muted(store, OWNER, room=addins.ALL_ROOMS, person=eve, muted=True)
    (change,) = done.changes
    assert (change.entry.room, change.entry.detail) == (None, eve)  # no room: every room
    assert addins.muted(store, room=ROOM, person=bob) == (True, False)
    assert addins.muted(store, room=OTHER, person=eve) == (False, True)
    assert addins.every_mute(store) == {(ROOM, bob), (addins.ALL_ROOMS, eve)}

    assert addins.set_muted(store, OWNER, room=ROOM, person=bob, muted=False).result
    assert addins.every_mute(store) == {(addins.ALL_ROOMS, eve)}
    assert [a for a, _r, _d in actions(store)[:3]] == ["unmute", "mute", "mute"]


@pytest.mark.parametrize("default", [False, True])
def test_the_pinned_rooms_are_read_in_one_look(store: Store, default: bool) -> None:
    addins.register(store, OWNER, pool=POOL, name="Stock", url=URL)
    for room in (ROOM, OTHER, f"gamma@{POOL}"):
        addins.attach(store, OWNER, room=room, name="Stock")
    addins.set_pin(store, OWNER, room=ROOM, pin=True)
    addins.set_pin(store, OWNER, room=f"gamma@{POOL}", pin=False)
    addins.set_pin_tail(store, room=f"delta@{POOL}", tail=None)  # unknown room: nothing
    found = {info.jid: info for info in addins.pinned(store, default=default)}
    assert set(found) == ({ROOM, OTHER} if default else {ROOM})
    assert (found[ROOM].addin, found[ROOM].url, found[ROOM].pin) == ("Stock", URL, True)
