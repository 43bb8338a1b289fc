"""The Control Panel: the ad-hoc commands (XEP-0050) beside the chat commands, as forms.

Nothing here is declared again: the forms are the chat commands declared with `form=`
(bot.commands.direct). A form's fields come from the command's words, by their kind
(XEP-0004 fields, described as plain values; bot.xmpp.adhoc turns them into stanzas), and
a submitted form runs the command's own handler, as the requester, via "adhoc". Who is
offered a form is the command's role, by the rule chat's help uses (bot.policy); the room
rule is the room tracker's. So the panel and chat cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot import addins, names, policy
from bot.commands.direct import DIRECT, every_addin
from bot.commands.grammar import Arguments, Signature, Word, WordKind
from bot.commands.registry import (
    Command,
    CommandSet,
    Form,
    Front,
    Managers,
    Outcome,
    RoomExists,
    Table,
    check_room_exists,
    finished,
    prepare,
    room_refusal,
)
from bot.config import Settings
from bot.errors import CommandError
from bot.i18n import ENGLISH, Msg, Tr, msg
from bot.values import Actor, Change, Role, Sender
from store import Store

__all__ = ["OPERATIONS", "PANEL", "Field", "Operation", "Outcome", "Panel", "Requester", "Table"]

MOST_CHOICES = 200  # longer lists of add-ins are typed in, not chosen
FORMS = Front(lambda command, page: f"{command.name} page {page}")


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

    def managed_here(self, jid: str) -> dict[str, bool]:
        """Several processes: the rooms this one serves that `jid` is seen managing (room →
        seen owning it); what another process of the bot asks."""

    async def managed_elsewhere(self, jid: str) -> dict[str, bool]:
        """Several processes: the rooms the others serve that `jid` manages, as they vouch
        for them (room → seen owning it); none with one process."""

    async def served_elsewhere(self, room: str) -> bool:
        """Several processes: another one serves `room` now."""


@dataclass(frozen=True)
class Field:
    """One XEP-0004 form field, as a plain value."""

    var: str
    label: str  # a Msg: said in the requester's language by bot.xmpp.adhoc
    kind: str = "text-single"  # text-single, jid-single, list-single, boolean
    required: bool = False
    options: tuple[str, ...] = ()
    value: str = ""


@dataclass(frozen=True)
class Requester:
    """Who runs a command: the real bare JID the server vouches for (IQs come from the real
    full JID), whether it is an admin, and the rooms it is seen managing. Several
    processes: `elsewhere`, those of them other processes serve, as they vouched for them
    when asked (room → seen owning it)."""

    jid: str
    is_admin: bool
    managed: tuple[str, ...] = ()
    elsewhere: Mapping[str, bool] = field(default_factory=dict)


Values = dict[str, str]


@dataclass(frozen=True)
class Operation:
    """A command offered as a form."""

    command: Command
    form: Form

    @property
    def node(self) -> str:
        return self.command.name

    @property
    def name(self) -> str:  # what clients list
        return self.form.title

    @property
    def instructions(self) -> str:
        return self.form.instructions

    @property
    def role(self) -> Role:
        return self.command.role

    @property
    def room_field(self) -> str | None:  # where a manager names the room they must manage
        return self.command.room_word

    @property
    def signature(self) -> Signature:
        return self.form.signature or self.command.signature

    def fields(self, settings: Settings, store: Store, requester: Requester) -> list[Field]:
        """The form's fields, from the words' kinds (blocking: may read the store)."""
        sig = self.signature
        asked = [(word, True) for word in sig.required]
        asked += [(word, False) for word in (*sig.optional, *sig.options, *sig.flags)]
        return [f for word, needed in asked for f in _fields(word, needed, settings, store,
                                                             requester)]

    async def check_room(self, settings: Settings, values: Values, exists: RoomExists) -> None:
        """On the loop, before `run`: a room that must exist is asked (CommandError if not)."""
        if self.command.room_must_exist and self.room_field is not None:
            room = names.resolve_room(settings.pools.names, values.get(self.room_field, ""))
            await check_room_exists(self.command, room, exists)

    def run(
        self, settings: Settings, store: Store, actor: Actor, values: Values,
        tr: Tr = ENGLISH,
    ) -> Outcome:
        """What the submitted form does: the command's handler (blocking); its answer in
        `tr`'s language."""
        request = prepare(
            self.command, settings, store, actor, _arguments(self.signature, values), FORMS,
            tr=tr,
        )
        if self.form.handler is not None:
            return self.form.handler(request)
        done = finished(self.command.handler(request))
        said = done.result.text if done.result else tr.gettext("Done.")
        return Outcome(said, changes=done.changes)


class Panel:
    """The forms of one set of commands: those declared with `form=`."""

    def __init__(self, commands: CommandSet) -> None:
        self.commands = commands
        self.operations = {
            c.name: Operation(c, c.form) for c in commands.commands.values() if c.form
        }

    def offered(self, requester: Requester) -> list[Operation]:
        """What this requester is offered: the commands its role allows, as in chat's help."""
        held = policy.held_for_forms(admin=requester.is_admin, managed=requester.managed)
        return [
            self.operations[c.name] for c in self.commands.offered(held)
            if c.name in self.operations
        ]


PANEL = Panel(DIRECT)
OPERATIONS = PANEL.operations


def may_offer(operation: Operation, requester: Requester) -> bool:
    """Listed for this requester: the chat command's role, by the same rule as chat's help."""
    held = policy.held_for_forms(admin=requester.is_admin, managed=requester.managed)
    return policy.may_run(operation.role, held)


def manager_refusal(
    operation: Operation, requester: Requester, settings: Settings, managers: Managers,
    values: Values, *, served_elsewhere: bool = False,
) -> str | None:
    """For a manager's command: None if the requester manages the room named in `values`,
    as this process sees it, or as the process serving it vouched (`requester.elsewhere`).
    `served_elsewhere`: another process serves the room, and did not vouch for them.

    Raises CommandError for a room that is not one (or not in a served pool)."""
    needed = operation.command.needed(_arguments(operation.signature, values))
    if requester.is_admin or needed not in (Role.MANAGER, Role.OWNER):
        return None
    room = named_room(operation, settings, values)
    owner = requester.elsewhere.get(room)
    if owner is not None and (owner or needed is Role.MANAGER):
        return None
    if owner is not None or (served_elsewhere and needed is Role.OWNER):
        return msg("Only the owners of {room} may do that.", room=room)
    if served_elsewhere:
        return msg("Only the owners and admins of {room} may do that.", room=room)
    refused = room_refusal(needed, room, managers, Sender(requester.jid))
    return None if refused is None else refused.reason


def named_room(operation: Operation, settings: Settings, values: Values) -> str:
    """The room a manager's form names (CommandError if it names none that is served)."""
    assert operation.room_field is not None  # noqa: S101 - manager operations name a room
    return names.resolve_room(settings.pools.names, values.get(operation.room_field, ""))


# --- words to fields and back --------------------------------------------------------------


def _fields(
    word: Word, required: bool, settings: Settings, store: Store, requester: Requester
) -> list[Field]:
    kind = word.kind
    asked = Msg(word.asked)  # a declared label: in the catalogs (bot.locale.declared)
    if kind is WordKind.POOL:
        served = tuple(settings.pools.names)
        if len(served) < 2:
            return []  # the only pool is meant
        return [Field(word.name, asked, "list-single", True, served, served[0])]
    if kind is WordKind.PAGE:
        return []  # a form shows every page
    if kind is WordKind.FLAG:
        return [Field(word.name, asked, "boolean", value="0")]
    if kind is WordKind.ROOM and requester.is_admin:
        label = msg("{label} (room@service)", label=asked)
        return [Field(word.name, label, "jid-single", required)]
    if kind is WordKind.ROOM:
        return [Field(word.name, asked, "list-single", required, requester.managed)]
    if kind is WordKind.SERVED_ROOM:
        return [Field(word.name, asked, "list-single", required, _served(settings, store))]
    if kind is WordKind.ADDIN and len(settings.pools.names) == 1:
        choices = every_addin(store, settings.pools.names[0], most=MOST_CHOICES)
        if choices and len(choices) <= MOST_CHOICES:
            names_ = tuple(name for name, _url, _uses in choices)
            return [Field(word.name, asked, "list-single", required, names_)]
    if word.choices:
        return [Field(word.name, asked, "list-single", required, word.choices)]
    return [Field(word.name, asked, required=required)]


def _served(settings: Settings, store: Store) -> tuple[str, ...]:
    served = set(settings.pools.names)
    rooms = tuple(
        info.jid for info in addins.list_rooms(store, joined_only=True)
        if names.pool_of(info.jid) in served
    )
    if not rooms:
        raise CommandError(msg("The bot serves no rooms."))
    return rooms


def _arguments(signature: Signature, values: Values) -> Arguments:
    """The submitted values as the command's words: what is left empty is not given."""
    words = (*signature.required, *signature.optional)
    return Arguments(
        {w.name: values[w.name] for w in words if values.get(w.name)},
        {w.name: values[w.name] for w in signature.options if values.get(w.name)},
        frozenset(w.name for w in signature.flags if values.get(w.name) in ("1", "true")),
    )
