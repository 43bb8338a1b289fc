"""Declaring commands and dispatching chat to them.

A command is declared once — name, words (each of a kind: bot.commands.grammar), help line,
who may run it, and whether and how it is on the command line (`cli`) and in the Control
Panel (`form`). Chat (the dispatcher, here), the command line (bot.cli) and the forms
(bot.xmpp.panel) are built from these declarations and run the same handler with a Request
saying who asks, via which front end. The dispatcher does the role check before the handler
runs; help and the forms offered come from the same declarations, by the same rule
(bot.policy), and hide what the asker may not run.
"""

from __future__ import annotations

import logging
import secrets
import textwrap
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from bot import policy
from bot.commands.answers import Answers
from bot.commands.grammar import (
    POOL,
    Arguments,
    Signature,
    Word,
    WordKind,
    match,
    split_words,
)
from bot.config import Settings
from bot.errors import BadWords, CommandError
from bot.i18n import ENGLISH, Tr, msg
from bot.metrics import METRICS
from bot.names import resolve_pool, resolve_room
from bot.policy import RoomView
from bot.values import Actor, Change, Done, Place, Reply, Role, Sender
from bot.wording import did_you_mean
from store import Store

log = logging.getLogger(__name__)


class Managers(Protocol):
    """What the room tracker (bot.rooms.Rooms) knows of the rooms the bot is in."""

    @property
    def rooms(self) -> Mapping[str, RoomView]: ...

    def state(self, room: str) -> RoomView | None: ...

    def named(self, room: str) -> frozenset[str]:
        """The JIDs the owners of `room` named as its managers."""
        ...

    @property
    def named_managers(self) -> Mapping[str, frozenset[str]]: ...

    def own_role(self, room: str) -> str | None:
        """The bot's own role in `room` (None: not in it)."""
        ...

    def subject_open(self, room: str) -> bool | None:
        """Whether `room` lets its occupants change the subject (None: not known)."""
        ...


def chat_spelling(word: Word) -> str:
    """A word as chat takes it: `pool <pool>`, `force`."""
    return word.name if word.kind is WordKind.FLAG else f"{word.name} <{word.name}>"


@dataclass(frozen=True)
class Front:
    """What differs with the front end that asks: how it calls for the next page of an
    answer, how many lines one answer may hold, how its user spells an option or a flag in
    a hint (`force`, `--force`), and (chat) what commands start with."""

    more: Callable[[Command, int], str]  # (the command, the page) -> what to type for it
    most_lines: int = 200
    prefix: str = ""
    paged: bool = True  # False at a shell: a read answers with everything, on no pages
    spelled: Callable[[Word], str] = chat_spelling


def chat_front(prefix: str) -> Front:
    return Front(lambda command, page: f"{prefix}{command.name} page {page}", prefix=prefix)


@dataclass(frozen=True)
class InRooms:
    """For a manager's help by direct message: the rooms she manages, and the room commands
    she may run there (typed after `prefix`, in the room)."""

    rooms: tuple[str, ...]
    commands: tuple[Command, ...]
    prefix: str


@dataclass(frozen=True)
class Request:
    settings: Settings
    store: Store
    actor: Actor  # who asks, via which front end: recorded in the audit log
    args: Arguments
    room: str | None  # the room the command is about, checked to be in a served pool
    command: Command
    front: Front
    allowed: tuple[Command, ...] = ()  # filled for help: what this sender may run here
    tr: Tr = ENGLISH  # the language of the answer (bot.i18n)
    person: str | None = None  # chat: who asks, as firmly as the room says (Sender.person)
    in_rooms: InRooms | None = None  # filled for a manager's help by direct message

    def pool(self) -> str:
        return resolve_pool(
            self.settings.pools.names, self.args.options.get("pool"),
            spelled=self.front.spelled(POOL),
        )

    def more(self, page: int) -> str:
        """What this front end's user types for `page` of this command's answer."""
        return self.front.more(self.command, page)


def prepare(
    command: Command, settings: Settings, store: Store, actor: Actor, args: Arguments,
    front: Front, *, room: str | None = None, tr: Tr = ENGLISH,
) -> Request:
    """The request for `command`, with the room its words name checked to be one (in a served
    pool); raises CommandError if not. `room`: where a room command was said; `tr`: the
    language of the answer."""
    if command.room_word is not None:
        room = resolve_room(settings.pools.names, args[command.room_word])
    return Request(settings, store, actor, args, room, command, front, tr=tr)


Precheck = Callable[[Managers, "str | None", Arguments], "str | None"]

# A handler that changes the store returns Done: its reply and the changes it committed.
Handler = Callable[[Request], "Reply | Done[Reply | None] | None"]


def finished(result: Reply | Done[Reply | None] | None) -> Done[Reply | None]:
    """A handler's result, as what it says and the changes it committed."""
    return result if isinstance(result, Done) else Done(result)


@dataclass(frozen=True)
class Table:
    """A form's result as a table: columns (var, label) and rows of values."""

    columns: tuple[tuple[str, str], ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Outcome:
    """What a submitted form says, and the changes it committed (for the announcer).

    `text`: the answer as short lines, shown in a text field (for clients that show no
    table: profanity and poezio show a text-multi field, a line a value); `table`, the same
    as a table for clients that show one."""

    note: str
    error: bool = False
    table: Table | None = None
    changes: tuple[Change, ...] = ()
    text: tuple[str, ...] = ()
    text_label: str = "List"


FORM_MARKUP = 60  # characters a result form spends around one table cell (field, value)
LINE_MARKUP = 20  # and around one line of its text (a value)
# The widest line of a form's text: poezio shows a text-multi value only if it fits in half
# of its form's width (so in a terminal of about 140 columns); longer lines are wrapped.
TEXT_WIDTH = 60


def text_lines(lines: Iterable[str]) -> list[str]:
    """`lines` as a form's text: each wrapped at TEXT_WIDTH, at spaces where it can be."""
    wrapped: list[str] = []
    for line in lines:
        wrapped += textwrap.wrap(
            line, TEXT_WIDTH, subsequent_indent="  ", break_on_hyphens=False
        ) or [""]
    return wrapped


def table_outcome(
    note: str, columns: tuple[tuple[str, str], ...], rows: Sequence[tuple[str, ...]],
    budget: int, tr: Tr = ENGLISH, *, label: str | None = None,
) -> Outcome:
    """A form's answer as a table, and as text: a line a cell (“URL: https://…”, wrapped
    to TEXT_WIDTH for a terminal client's form field), a blank line between rows. As many rows as
    fit within `budget` characters; the note says how many more there are. The note, the
    column labels and `label` (the text's, “List” if none) are in `tr`'s language."""
    label = label or tr.gettext("List")
    size, shown, lines = len(note) * 2 + 10 * FORM_MARKUP, 0, []
    for row in rows:
        cells = text_lines(
            f"{label}: {value}" for (_var, label), value in zip(columns, row, strict=True) if value
        )
        size += sum(len(cell) + LINE_MARKUP for cell in cells)  # as text
        size += sum(len(value) + FORM_MARKUP for value in row)  # in the table
        if size > budget:
            break
        lines += [*([""] if shown else []), *cells]
        shown += 1
    left = len(rows) - shown
    if left:
        note += tr.ngettext(
            " The first {shown} are shown, and {n} more is not.",
            " The first {shown} are shown, and {n} more are not.", left, shown=shown,
        )
    return Outcome(
        note, table=Table(columns, tuple(rows[:shown])), text=tuple(lines), text_label=label
    )


@dataclass(frozen=True)
class Form:
    """How a command is offered as a form (XEP-0050, XEP-0004). Its fields come from the
    command's words, unless `signature` gives the form its own; with them, `handler` says
    what the submitted form does (else the command's own handler runs)."""

    title: str
    instructions: str = ""
    signature: Signature | None = None
    handler: Callable[[Request], Outcome] | None = None


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    role: Role
    signature: Signature
    handler: Handler
    usage_words: str
    room_word: str | None  # the argument naming the room a manager must manage
    # Its answer depends only on its words, its room and the store: kept until the store
    # changes (bot/commands/answers.py).
    kept: bool = False
    cli: tuple[str, ...] | None = None  # its words on the command line: ("addin", "register")
    form: Form | None = None  # in the Control Panel
    # The room it names must exist (asked of the room before anything is recorded): `join`.
    room_must_exist: bool = False
    # A read's answer as data (lists, dicts, str, int, bool, None): what `--json` prints on
    # the command line. Its shape is documented in the README and kept stable.
    data: Callable[[Request], object] | None = None
    # Options that make it an owner's command (`managers add|remove <jid>`; listing them is
    # a manager's).
    owner_options: tuple[str, ...] = ()
    # Checked on the loop before it runs, with what the bot knows of the rooms: the
    # sentence saying why it cannot be done (e.g. `pin on` where the bot may not change
    # the subject), or None.
    precheck: Precheck | None = None

    @property
    def usage(self) -> str:
        return f"{self.name} {self.usage_words}".strip()

    def needed(self, args: Arguments) -> Role:
        """The role these words need: the command's, or an owner's for an owner's option."""
        if any(option in args.options for option in self.owner_options):
            return max(self.role, Role.OWNER)
        return self.role


NO_WORDS = Signature()


class NotAllowed(CommandError):
    """The sender's role does not allow the command; `why` is the refusal's metric label."""

    def __init__(self, why: str, reason: str) -> None:
        super().__init__(reason)
        self.why = why


class Elsewhere(NotAllowed):
    """Several processes: a direct command about a room another process serves (only that
    one sees who is in it). Handed over to it if it can be; else `reason` is the answer."""

    def __init__(self, room: str, refused: NotAllowed) -> None:
        super().__init__(refused.why, refused.message)
        self.room = room


# Hands a direct command (room, sender, words, language) to the process serving the room:
# True if handed over (that process answers), False if none could take it.
Relay = Callable[[str, Sender, str, Tr], Awaitable[bool]]


def room_refusal(needed: Role, room: str, managers: Managers, sender: Sender) -> NotAllowed | None:
    """For a manager's or an owner's command about `room` (by someone who is no admin): the
    refusal, by the rules of bot.policy, or None."""
    if needed is Role.MANAGER:
        refusal = policy.manager_refusal(room, managers.state(room), sender, managers.named(room))
        return None if refusal is None else NotAllowed("not_manager", refusal)
    if needed is Role.OWNER:
        refusal = policy.owner_refusal(room, managers.state(room), sender)
        return None if refusal is None else NotAllowed("not_owner", refusal)
    return None



@dataclass(frozen=True)
class _Call:
    """A command ready to run: checked, with its request; `key` if its answer is kept."""

    command: Command
    request: Request
    key: tuple[object, ...] | None


class CommandSet:
    """The commands of one place (direct messages, or a room), in declaration order."""

    def __init__(self, place: Place, prefix: str = "") -> None:
        self.place = place
        self.prefix = prefix
        self.front = chat_front(prefix)
        self.commands: dict[str, Command] = {}

    def command(
        self, name: str, summary: str, *, role: Role = Role.ANYONE,
        signature: Signature = NO_WORDS, usage: str | None = None,
        room_word: str | None = None, kept: bool = False,
        cli: tuple[str, ...] | None = None, form: Form | None = None,
        room_must_exist: bool = False, data: Callable[[Request], object] | None = None,
        owner_options: tuple[str, ...] = (), precheck: Precheck | None = None,
    ) -> Callable[[Handler], Handler]:
        def declare(handler: Handler) -> Handler:
            words = usage if usage is not None else _usage(signature)
            self.commands[name] = Command(
                name, summary, role, signature, handler, words, room_word, kept, cli, form,
                room_must_exist, data, owner_options, precheck,
            )
            return handler

        return declare

    def usage(self, command: Command) -> str:
        return f"{self.prefix}{command.usage}"

    def offered(self, held: Role) -> list[Command]:
        """The commands whoever holds `held` may run: for help, and the forms offered."""
        return [c for c in self.commands.values() if policy.may_run(c.role, held)]


def _usage(signature: Signature) -> str:
    parts = [f"<{w.name}>" for w in signature.required]
    parts += [f"[<{w.name}>]" for w in signature.optional]
    parts += [f"[{o.name} <{o.name}>]" for o in signature.options]
    parts += [f"[{f.name}]" for f in signature.flags]
    return " ".join(parts)


RoomExists = Callable[[str], Awaitable["bool | None"]]  # the Transport's room_exists


async def check_room_exists(command: Command, room: str | None, exists: RoomExists) -> None:
    """For a command whose room must exist: ask the room, and raise CommandError (nothing
    recorded yet) unless it answered that it exists. Runs on the loop, before the handler."""
    if not command.room_must_exist or room is None:
        return
    refusal = policy.missing_room_refusal(room, await exists(room))
    if refusal is not None:
        raise CommandError(refusal)


async def _not_asked(_room: str) -> bool | None:
    return None


class Dispatcher:
    """Runs one command line for one sender: find, authorise, parse, run off the loop."""

    def __init__(
        self, settings: Settings, store: Store, managers: Managers,
        commands: dict[Place, CommandSet], *, changed: Callable[[Sequence[Change]], None],
        exists: RoomExists | None = None, relay: Relay | None = None,
        served_here: Callable[[str], bool] = lambda _room: True,
        learn_config: Callable[[str], Awaitable[None]] | None = None,
        elsewhere: Callable[[str], Awaitable[Mapping[str, bool]]] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.managers = managers
        self.commands = commands
        self.changed = changed  # on the loop: the changes a command committed
        # Asks a room whether it exists (for `join`); without one, no room is joined.
        self.exists = exists or _not_asked
        # Several processes: whether this one serves a room, and the hand-over to the one
        # that does (a manager's direct command needs the room's view of its occupants).
        self.relay = relay
        self.served_here = served_here
        # Asks a room what it lets its occupants do, where not known, before a precheck
        # reads it (`pin on`: may the bot change the subject?).
        self.learn_config = learn_config
        # Several processes: the rooms the others serve that a person manages (room → owns
        # it), as they vouch for them, for what help by direct message offers.
        self.elsewhere = elsewhere
        self.answers: Answers[Reply] = Answers(size=lambda reply: len(reply.text))

    async def run(
        self, place: Place, sender: Sender, text: str, tr: Tr = ENGLISH, *,
        may_relay: bool = True,
    ) -> Reply | None:
        """Run one command line; the answer (and any refusal) in `tr`'s language. None:
        no answer here (handed over to the process serving the room, which answers)."""
        try:
            reply = await self._run(place, sender, text, tr)
        except CommandError as exc:
            if isinstance(exc, Elsewhere) and may_relay and self.relay is not None and (
                await self.relay(exc.room, sender, text, tr)
            ):
                METRICS.command(place.name, "relayed")
                return None
            if isinstance(exc, NotAllowed):
                METRICS.refusal(exc.why)
            METRICS.command(place.name, "refused")
            return Reply(exc.said(tr))
        except Exception:
            METRICS.command(place.name, "error")
            ref = secrets.token_hex(4)
            log.exception("command failed (ref %s): %r from %s", ref, text[:200], sender)
            return Reply(tr.gettext(
                "Sorry, something went wrong (ref: {ref}). The operator's log has it.", ref=ref
            ))
        METRICS.command(place.name, "ok")
        return reply

    def kept(
        self, place: Place, sender: Sender, text: str, tr: Tr = ENGLISH
    ) -> Reply | None:
        """The answer to this command line, if one is kept and `sender` may have it: given at
        once, on the loop. None otherwise (run it with `run`)."""
        if not self.answers:
            return None  # nothing kept (the store just changed): no need to look closer
        try:
            words = split_words(text)
            if not self._find(place, words).kept:
                return None
            call = self._prepare(place, sender, words, tr)
        except CommandError:
            return None  # `run` gives (and counts) the refusal
        assert call.key is not None  # noqa: S101 - a kept command's call has its key
        reply = self.answers.get(call.key)
        if reply is not None:
            METRICS.command(place.name, "ok")
        return reply

    async def _run(self, place: Place, sender: Sender, text: str, tr: Tr) -> Reply | None:
        words = split_words(text)
        call = self._prepare(place, sender, words, tr, await self._managed_elsewhere(
            place, sender, words))
        await check_room_exists(call.command, call.request.room, self.exists)
        if call.command.precheck is not None:
            if call.request.room is not None and self.learn_config is not None:
                await self.learn_config(call.request.room)
            refusal = call.command.precheck(self.managers, call.request.room, call.request.args)
            if refusal is not None:
                raise CommandError(refusal)
        try:
            return await self._call(call)
        except BadWords as exc:
            usage = self.commands[place].usage(call.command)
            raise CommandError(exc.message, usage=usage) from None

    async def _call(self, call: _Call) -> Reply | None:
        if call.key is None:
            done = finished(await self.store.run(call.command.handler, call.request))
            if done.changes:  # back on the loop: hand them over before the sender is answered
                self.answers.changed()
                self.changed(done.changes)
            return done.result
        kept = self.answers.get(call.key)
        if kept is not None:
            return kept
        read_at = self.answers.version()
        reply = await self.store.run(call.command.handler, call.request)
        assert not isinstance(reply, Done)  # noqa: S101 - a kept command changes nothing
        if reply is not None:
            self.answers.keep(call.key, reply, read_at=read_at)
        return reply

    async def _managed_elsewhere(
        self, place: Place, sender: Sender, words: list[str]
    ) -> Mapping[str, bool]:
        """Several processes: for help by direct message (asked, or given with an unknown
        command) from someone who is no admin, the rooms the other processes serve that
        they manage. (Their commands about such a room are handed over: `relay`.)"""
        name = words[0].lower() if words else "help"
        asks_help = name == "help" or name not in self.commands[place].commands
        if (self.elsewhere is None or place is not Place.DIRECT or sender.jid is None
                or not asks_help or self.is_admin(sender)):
            return {}
        return await self.elsewhere(sender.jid)

    def _prepare(
        self, place: Place, sender: Sender, words: list[str], tr: Tr,
        elsewhere: Mapping[str, bool] | None = None,
    ) -> _Call:
        """Find the command, check the sender's role and the words: everything but running
        it. Raises CommandError with the sentence the sender reads. `elsewhere`: for help,
        the rooms other processes serve that the sender manages (room → owns it)."""
        commands = self.commands[place]
        command = self._find(place, words, sender, elsewhere)
        is_admin = self.is_admin(sender)
        refusal = policy.role_refusal(command.role, admin=is_admin, command=command.name)
        if refusal is not None:
            raise NotAllowed("not_admin", refusal)
        self._room_left_out(place, command, words)
        try:
            args = match(command.signature, words[1:])
            request = prepare(
                command, self.settings, self.store, _actor(place, sender), args,
                commands.front, room=sender.room, tr=tr,
            )
        except CommandError as exc:
            raise CommandError(exc.message, usage=commands.usage(command)) from None
        room = request.room
        needed = command.needed(args)
        if needed in (Role.MANAGER, Role.OWNER) and not is_admin:
            assert room is not None  # noqa: S101 - manager commands always name a room
            refused = room_refusal(needed, room, self.managers, sender)
            if refused is not None and place is Place.DIRECT and not self.served_here(room):
                raise Elsewhere(room, refused)
            if refused is not None:
                raise refused
        if command.name == "help":
            request = replace(
                request, allowed=tuple(self.allowed(place, sender, elsewhere)),
                in_rooms=self._in_rooms(place, sender, admin=is_admin, elsewhere=elsewhere),
            )
        request = replace(request, person=sender.person)
        key = (place, command.name, room, tuple(words[1:]), tr.lang) if command.kept else None
        return _Call(command, request, key)

    def _room_left_out(self, place: Place, command: Command, words: list[str]) -> None:
        """`attach Wiki` by direct message: the words a room command takes, without the room
        a direct message must name. Say what was meant, and where to type it."""
        room_words = self.commands.get(Place.ROOM)
        if command.room_word is None or place is not Place.DIRECT or room_words is None:
            return
        if command.name not in room_words.commands or len(words) < 2 or "@" in words[1]:
            return
        if len(words) - 1 == len(command.signature.required) - 1:
            said = " ".join(f'"{word}"' if " " in word else word for word in words[1:])
            in_room = f"{room_words.prefix}{command.name} {said}"
            raise CommandError(msg(
                "“{word}” is not a room address; in a room, type `{room_usage}`, "
                "or here `{usage}`.", word=words[1][:40], room_usage=in_room,
                usage=self.commands[place].usage(command),
            ))

    def _find(
        self, place: Place, words: list[str], sender: Sender | None = None,
        elsewhere: Mapping[str, bool] | None = None,
    ) -> Command:
        """The command the words name; CommandError (listing what `sender` may run) if none."""
        name = words[0].lower() if words else ("show" if place is Place.ROOM else "help")
        command = self.commands[place].commands.get(name)
        direct = self.commands.get(Place.DIRECT)
        if command is None and place is Place.ROOM and direct and name in direct.commands:
            assert self.settings.xmpp is not None  # noqa: S101 - a running bot has its JID
            raise CommandError(msg(
                "{command} works only in a direct message to {jid}.",
                command=name, jid=self.settings.xmpp.jid,
            ))
        if command is None:
            names = [c.name for c in self.allowed(place, sender, elsewhere)] if sender else []
            raise CommandError(msg(
                "Unknown command “{name}”.{did_you_mean} Commands: {commands}.",
                name=name[:40], did_you_mean=did_you_mean(name, names),
                commands=", ".join(names),
            ))
        return command

    def _in_rooms(
        self, place: Place, sender: Sender, *, admin: bool,
        elsewhere: Mapping[str, bool] | None = None,
    ) -> InRooms | None:
        """A manager (not an admin) asking by direct message: the rooms she manages (here,
        or `elsewhere`) and the room commands she may type there."""
        room_words = self.commands.get(Place.ROOM)
        if place is not Place.DIRECT or admin or sender.jid is None or room_words is None:
            return None
        managed = sorted(set(policy.managed_rooms(
            self.managers.rooms, sender.jid, self.managers.named_managers
        )) | set(elsewhere or {}))
        if not managed:
            return None
        return InRooms(tuple(managed), tuple(room_words.offered(Role.MANAGER)), room_words.prefix)

    def is_admin(self, sender: Sender) -> bool:
        return policy.is_admin(self.settings.roles.admins, sender.jid)

    def allowed(
        self, place: Place, sender: Sender, elsewhere: Mapping[str, bool] | None = None
    ) -> list[Command]:
        """The commands `sender` may run here, for help and for the unknown-command line
        (`elsewhere`: by direct message, the rooms other processes serve that they manage,
        room → owns it)."""
        admin = self.is_admin(sender)
        if sender.room is not None:
            room = sender.room
            owner = room_refusal(Role.OWNER, room, self.managers, sender) is None
            manager = owner or room_refusal(Role.MANAGER, room, self.managers, sender) is None
        else:
            views, jid = self.managers.rooms, sender.jid
            elsewhere = elsewhere or {}
            owner = bool(jid and (policy.owned_rooms(views, jid) or any(elsewhere.values())))
            manager = owner or bool(jid and (
                policy.managed_rooms(views, jid, self.managers.named_managers) or elsewhere))
        level = policy.level(admin=admin, manager=manager, owner=owner)
        return self.commands[place].offered(level)


def _actor(place: Place, sender: Sender) -> Actor:
    """Who asks, for the audit log: the real JID of a direct message; in a room, the real
    JID where the room shows it, else the occupant."""
    if place is Place.DIRECT:
        assert sender.jid is not None  # noqa: S101 - direct messages come from a real JID
        return Actor(sender.jid, "dm")
    return Actor(sender.jid or f"{sender.room}/{sender.nick}", "room")
