"""The Control Panel: the ad-hoc commands (XEP-0050) beside the chat commands, as forms.

Each operation declares its node, its form's fields (XEP-0004, described as plain values;
bot.xmpp.adhoc turns them into stanzas) and what a submitted form does. Who may run it is
not declared again here: it is the role of the chat command of the same name
(bot.commands.direct), and the room rule is the room tracker's, so the panel and chat
cannot drift apart. Changes go through bot.addins, recorded in the audit log via "adhoc";
results read as in chat (bot.commands.text).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot import addins, names, policy
from bot.commands import text
from bot.commands.direct import DIRECT
from bot.commands.registry import Managers
from bot.config import Settings
from bot.errors import CommandError
from bot.values import Actor, Change, Role, Sender
from store import Store

MOST_CHOICES = 200  # longer lists of add-ins are typed in, not chosen


class Backend(Protocol):
    """What the panel needs of the bot."""

    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> Store: ...

    @property
    def rooms(self) -> Managers: ...

    def changed(self, changes: Sequence[Change] = ()) -> None:
        """On the loop: an operation committed `changes`: announce them now."""


@dataclass(frozen=True)
class Field:
    """One XEP-0004 form field, as a plain value."""

    var: str
    label: str
    kind: str = "text-single"  # text-single, jid-single, list-single, boolean
    required: bool = False
    options: tuple[str, ...] = ()
    value: str = ""


@dataclass(frozen=True)
class Table:
    """A result form: columns (var, label) and rows of values."""

    columns: tuple[tuple[str, str], ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Outcome:
    note: str
    error: bool = False
    table: Table | None = None
    changes: tuple[Change, ...] = ()  # what the operation committed, for the announcer


@dataclass(frozen=True)
class Requester:
    """Who runs a command: the real bare JID the server vouches for (IQs come from the real
    full JID), whether it is an admin, and the rooms it is seen managing."""

    jid: str
    is_admin: bool
    managed: tuple[str, ...] = ()


Values = dict[str, str]
FormBuilder = Callable[[Settings, Store, Requester], list[Field]]
Runner = Callable[[Settings, Store, Actor, Values], Outcome]


@dataclass(frozen=True)
class Operation:
    node: str
    name: str  # what clients list
    command: str  # the chat command whose role applies
    fields: FormBuilder  # blocking (may read the store): run off the loop
    run: Runner  # blocking: run off the loop
    room_field: str | None = None  # where a manager names the room they must manage
    instructions: str = ""

    @property
    def role(self) -> Role:
        return DIRECT.commands[self.command].role


def may_offer(operation: Operation, requester: Requester) -> bool:
    """Listed for this requester: the chat command's role, by the same rule as chat's help."""
    held = policy.held_for_forms(admin=requester.is_admin, managed=requester.managed)
    return policy.may_run(operation.role, held)


def manager_refusal(
    operation: Operation, requester: Requester, settings: Settings, managers: Managers,
    values: Values,
) -> str | None:
    """For a manager's command: None if the requester manages the room named in `values`.

    Raises CommandError for a room that is not one (or not in a served pool)."""
    if requester.is_admin or operation.role is not Role.MANAGER:
        return None
    assert operation.room_field is not None  # noqa: S101 - manager operations name a room
    room = names.resolve_room(settings.pools.names, values.get(operation.room_field, ""))
    return policy.manager_refusal(room, managers.state(room), Sender(requester.jid))


# --- fields --------------------------------------------------------------------------------


def _pool_fields(settings: Settings) -> list[Field]:
    served = tuple(settings.pools.names)
    if len(served) < 2:
        return []  # the only pool is meant
    return [Field("pool", "Pool", "list-single", True, served, served[0])]


def _pool(settings: Settings, values: Values) -> str:
    return names.resolve_pool(settings.pools.names, values.get("pool") or None)


def _name_field(settings: Settings, store: Store, label: str = "Add-in") -> Field:
    """A list of the registered add-ins where there is one pool and not too many of them."""
    served = settings.pools.names
    if len(served) == 1:
        names = _addin_names(store, served[0])
        if names and len(names) <= MOST_CHOICES:
            return Field("name", label, "list-single", True, tuple(names))
    return Field("name", label, required=True)


def _addin_names(store: Store, pool: str) -> list[str]:
    names: list[str] = []
    page = 1
    while len(names) <= MOST_CHOICES:
        result = addins.list_addins(store, pool=pool, page=page)
        names += [name for name, _url, _uses in result.items]
        if result.page >= result.pages:
            break
        page += 1
    return names


def _room_field(requester: Requester) -> Field:
    if requester.is_admin:
        return Field("room", "Room (room@service)", "jid-single", True)
    return Field("room", "Room", "list-single", True, requester.managed)


# --- the operations ------------------------------------------------------------------------


def _register_fields(settings: Settings, store: Store, requester: Requester) -> list[Field]:
    return [
        Field("name", "Name", required=True),
        Field("url", "URL (http or https)", required=True),
        *_pool_fields(settings),
    ]


def _register(settings: Settings, store: Store, actor: Actor, values: Values) -> Outcome:
    done = addins.register(
        store, actor, pool=_pool(settings, values), name=values["name"], url=values["url"]
    )
    return Outcome(text.registered(done.result), changes=done.changes)


def _update_fields(settings: Settings, store: Store, requester: Requester) -> list[Field]:
    return [
        _name_field(settings, store),
        Field("url", "New URL (empty: unchanged)"),
        Field("new_name", "New name (empty: unchanged)"),
        *_pool_fields(settings),
    ]


def _update(settings: Settings, store: Store, actor: Actor, values: Values) -> Outcome:
    pool, name = _pool(settings, values), values["name"]
    url, new_name = values.get("url", ""), values.get("new_name", "")
    if not url and not new_name:
        raise CommandError("Fill in a new URL, a new name, or both.")
    said: list[str] = []
    changes: tuple[Change, ...] = ()
    # The new name first: the change follower looks the add-in up by the name its URL
    # change was recorded under, so that row must carry the name it keeps.
    if new_name:
        renamed = addins.rename(store, actor, pool=pool, name=name, new_name=new_name)
        said.append(text.renamed(name, renamed.result))
        name, changes = renamed.result.name, renamed.changes
    if url:
        try:
            updated = addins.update_url(store, actor, pool=pool, name=name, url=url)
        except CommandError as exc:
            if not said:
                raise
            return Outcome(f"{said[0]}\nThe URL was not changed: {exc.reason}", error=True,
                           changes=changes)
        said.append(text.url_updated(updated.result))
        changes += updated.changes
    return Outcome("\n".join(said), changes=changes)


def _unregister_fields(settings: Settings, store: Store, requester: Requester) -> list[Field]:
    return [
        _name_field(settings, store),
        Field("force", "Also detach it from the rooms using it", "boolean", value="0"),
        *_pool_fields(settings),
    ]


def _unregister(settings: Settings, store: Store, actor: Actor, values: Values) -> Outcome:
    done = addins.unregister(
        store, actor, pool=_pool(settings, values), name=values["name"],
        force=values.get("force") in ("1", "true"),
    )
    return Outcome(text.unregistered(done.result), changes=done.changes)


def _list_fields(settings: Settings, store: Store, requester: Requester) -> list[Field]:
    return _pool_fields(settings)


def _list(settings: Settings, store: Store, actor: Actor, values: Values) -> Outcome:
    pool = _pool(settings, values)
    rows: list[tuple[str, str, str]] = []
    page = 1
    while True:
        result = addins.list_addins(store, pool=pool, page=page)
        rows += [(name, url, str(uses)) for name, url, uses in result.items]
        if result.page >= result.pages:
            break
        page += 1
    if not rows:
        return Outcome(f"No add-ins are registered in {pool}.")
    columns = (("name", "Name"), ("url", "URL"), ("rooms", "Rooms using it"))
    return Outcome(f"Add-ins in {pool}: {len(rows)}.", table=Table(columns, tuple(rows)))


def _join_fields(settings: Settings, store: Store, requester: Requester) -> list[Field]:
    return [Field("room", "Room (room@service)", "jid-single", True)]


def _join(settings: Settings, store: Store, actor: Actor, values: Values) -> Outcome:
    room = names.resolve_room(settings.pools.names, values["room"])
    done = addins.set_joined(store, actor, room=room, joined=True)
    return Outcome(text.joined(room, changed=done.result), changes=done.changes)


def _leave_fields(settings: Settings, store: Store, requester: Requester) -> list[Field]:
    served = set(settings.pools.names)
    rooms = tuple(
        info.jid for info in addins.list_rooms(store, joined_only=True)
        if names.pool_of(info.jid) in served
    )
    if not rooms:
        raise CommandError("The bot serves no rooms.")
    return [Field("room", "Room", "list-single", True, rooms)]


def _leave(settings: Settings, store: Store, actor: Actor, values: Values) -> Outcome:
    room = names.resolve_room(settings.pools.names, values["room"])
    done = addins.set_joined(store, actor, room=room, joined=False)
    return Outcome(text.left(room, changed=done.result), changes=done.changes)


def _attach_fields(settings: Settings, store: Store, requester: Requester) -> list[Field]:
    return [_room_field(requester), _name_field(settings, store)]


def _attach(settings: Settings, store: Store, actor: Actor, values: Values) -> Outcome:
    room = names.resolve_room(settings.pools.names, values["room"])
    done = addins.attach(store, actor, room=room, name=values["name"])
    return Outcome(text.attached(done.result), changes=done.changes)


def _detach_fields(settings: Settings, store: Store, requester: Requester) -> list[Field]:
    return [_room_field(requester)]


def _detach(settings: Settings, store: Store, actor: Actor, values: Values) -> Outcome:
    room = names.resolve_room(settings.pools.names, values["room"])
    done = addins.detach(store, actor, room=room)
    return Outcome(text.detached(room, done.result), changes=done.changes)


OPERATIONS: dict[str, Operation] = {
    op.node: op
    for op in (
        Operation("register", "Register an add-in", "register", _register_fields, _register),
        Operation(
            "update", "Change an add-in's URL or name", "update", _update_fields, _update,
            instructions="Rooms using the add-in are told a new URL.",
        ),
        Operation(
            "unregister", "Unregister an add-in", "unregister", _unregister_fields, _unregister,
        ),
        Operation("list", "List the add-ins", "list", _list_fields, _list),
        Operation("join", "Join a room and serve it", "join", _join_fields, _join),
        Operation("leave", "Leave a room and forget it", "leave", _leave_fields, _leave),
        Operation(
            "attach", "Attach an add-in to a room", "attach", _attach_fields, _attach,
            room_field="room",
        ),
        Operation(
            "detach", "Detach a room's add-in", "detach", _detach_fields, _detach,
            room_field="room",
        ),
    )
}
