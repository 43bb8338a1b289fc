"""Declaring commands and dispatching to them.

A command is declared once — name, words, help line, who may run it — and the dispatcher
does the role check before the handler runs; help is generated from the same declarations
and hides what the sender may not run.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot import policy
from bot.commands.answers import Answers
from bot.commands.grammar import Arguments, Signature, match, split_words
from bot.config import Settings
from bot.errors import CommandError
from bot.metrics import METRICS
from bot.names import resolve_pool, resolve_room
from bot.policy import RoomView
from bot.values import Change, Done, Place, Reply, Role, Sender
from store import Store

log = logging.getLogger(__name__)


class Managers(Protocol):
    """What the room tracker (bot.rooms.Rooms) knows of the rooms the bot is in."""

    @property
    def rooms(self) -> Mapping[str, RoomView]: ...

    def state(self, room: str) -> RoomView | None: ...


@dataclass(frozen=True)
class Request:
    settings: Settings
    store: Store
    sender: Sender
    args: Arguments
    room: str | None  # the room the command is about, checked to be in a served pool
    is_admin: bool
    allowed: tuple[Command, ...] = ()  # filled for help: what this sender may run here
    prefix: str = ""

    def pool(self) -> str:
        return resolve_pool(self.settings.pools.names, self.args.options.get("pool"))


# A handler that changes the store returns Done: its reply and the changes it committed.
Handler = Callable[[Request], "Reply | Done[Reply | None] | None"]


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

    @property
    def usage(self) -> str:
        return f"{self.name} {self.usage_words}".strip()


NO_WORDS = Signature()


class NotAllowed(CommandError):
    """The sender's role does not allow the command; `why` is the refusal's metric label."""

    def __init__(self, why: str, reason: str) -> None:
        super().__init__(reason)
        self.why = why


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
        self.commands: dict[str, Command] = {}

    def command(
        self, name: str, summary: str, *, role: Role = Role.ANYONE,
        signature: Signature = NO_WORDS, usage: str | None = None,
        room_word: str | None = None, kept: bool = False,
    ) -> Callable[[Handler], Handler]:
        def declare(handler: Handler) -> Handler:
            words = usage if usage is not None else _usage(signature)
            self.commands[name] = Command(
                name, summary, role, signature, handler, words, room_word, kept
            )
            return handler

        return declare

    def usage(self, command: Command) -> str:
        return f"{self.prefix}{command.usage}"


def _usage(signature: Signature) -> str:
    parts = [f"<{w}>" for w in signature.required]
    parts += [f"[<{w}>]" for w in signature.optional]
    parts += [f"[{o} <{o}>]" for o in signature.options]
    parts += [f"[{f}]" for f in signature.flags]
    return " ".join(parts)


class Dispatcher:
    """Runs one command line for one sender: find, authorise, parse, run off the loop."""

    def __init__(
        self, settings: Settings, store: Store, managers: Managers,
        commands: dict[Place, CommandSet], *, changed: Callable[[Sequence[Change]], None],
    ) -> None:
        self.settings = settings
        self.store = store
        self.managers = managers
        self.commands = commands
        self.changed = changed  # on the loop: the changes a command committed
        self.answers: Answers[Reply] = Answers(size=lambda reply: len(reply.text))

    async def run(self, place: Place, sender: Sender, text: str) -> Reply | None:
        try:
            reply = await self._run(place, sender, text)
        except CommandError as exc:
            if isinstance(exc, NotAllowed):
                METRICS.refusal(exc.why)
            METRICS.command(place.name, "refused")
            return Reply(str(exc))
        except Exception:
            METRICS.command(place.name, "error")
            ref = secrets.token_hex(4)
            log.exception("command failed (ref %s): %r from %s", ref, text[:200], sender)
            return Reply(f"Sorry, something went wrong (ref: {ref}). The operator's log has it.")
        METRICS.command(place.name, "ok")
        return reply

    def kept(self, place: Place, sender: Sender, text: str) -> Reply | None:
        """The answer to this command line, if one is kept and `sender` may have it: given at
        once, on the loop. None otherwise (run it with `run`)."""
        if not self.answers:
            return None  # nothing kept (the store just changed): no need to look closer
        try:
            words = split_words(text)
            if not self._find(place, words).kept:
                return None
            call = self._prepare(place, sender, words)
        except CommandError:
            return None  # `run` gives (and counts) the refusal
        assert call.key is not None  # noqa: S101 - a kept command's call has its key
        reply = self.answers.get(call.key)
        if reply is not None:
            METRICS.command(place.name, "ok")
        return reply

    async def _run(self, place: Place, sender: Sender, text: str) -> Reply | None:
        call = self._prepare(place, sender, split_words(text))
        if call.key is None:
            done = await self.store.run(call.command.handler, call.request)
            if not isinstance(done, Done):
                return done
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

    def _prepare(self, place: Place, sender: Sender, words: list[str]) -> _Call:
        """Find the command, check the sender's role and the words: everything but running
        it. Raises CommandError with the sentence the sender reads."""
        commands = self.commands[place]
        command = self._find(place, words, sender)
        is_admin = self.is_admin(sender)
        refusal = policy.role_refusal(command.role, admin=is_admin, command=command.name)
        if refusal is not None:
            raise NotAllowed("not_admin", refusal)
        try:
            args = match(command.signature, words[1:])
            room = self._room(command, sender, args)
        except CommandError as exc:
            raise CommandError(exc.reason, usage=commands.usage(command)) from None
        if command.role is Role.MANAGER and not is_admin:
            assert room is not None  # noqa: S101 - manager commands always name a room
            refusal = policy.manager_refusal(room, self.managers.state(room), sender)
            if refusal is not None:
                raise NotAllowed("not_manager", refusal)
        visible = tuple(self.allowed(place, sender)) if command.name == "help" else ()
        request = Request(
            self.settings, self.store, sender, args, room, is_admin, visible, commands.prefix
        )
        key = (place, command.name, room, tuple(words[1:])) if command.kept else None
        return _Call(command, request, key)

    def _find(self, place: Place, words: list[str], sender: Sender | None = None) -> Command:
        """The command the words name; CommandError (listing what `sender` may run) if none."""
        name = words[0].lower() if words else ("show" if place is Place.ROOM else "help")
        command = self.commands[place].commands.get(name)
        if command is None:
            allowed = ", ".join(c.name for c in self.allowed(place, sender)) if sender else ""
            raise CommandError(f"Unknown command “{name[:40]}”. Commands: {allowed}.")
        return command

    def _room(self, command: Command, sender: Sender, args: Arguments) -> str | None:
        served = self.settings.pools.names
        if command.room_word is not None:
            return resolve_room(served, args[command.room_word])
        return sender.room

    def is_admin(self, sender: Sender) -> bool:
        return policy.is_admin(self.settings.roles.admins, sender.jid)

    def allowed(self, place: Place, sender: Sender) -> list[Command]:
        """The commands `sender` may run here, for help and for the unknown-command line."""
        admin = self.is_admin(sender)
        if sender.room is not None:
            room = sender.room
            manager = policy.manager_refusal(room, self.managers.state(room), sender) is None
        else:
            manager = bool(sender.jid and policy.managed_rooms(self.managers.rooms, sender.jid))
        held = policy.level(admin=admin, manager=manager)
        return [c for c in self.commands[place].commands.values() if policy.may_run(c.role, held)]
