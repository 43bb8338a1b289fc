"""Command grammar: recognising a command, splitting its words, matching them to a signature,
and the words commands take, each of a kind every front end understands.

Pure functions over text; nothing here knows about XMPP, roles or the store.
"""

from __future__ import annotations

import enum
import shlex
from dataclasses import dataclass, field

from bot.errors import CommandError
from bot.i18n import msg

PREFIX = "!addin"
MAX_COMMAND_CHARS = 4096
MAX_WORDS = 64


def strip_direct_prefix(text: str) -> str:
    """A direct message is always a command; a leading `!addin` is accepted and ignored."""
    rest = _after_prefix(text.strip())
    return text.strip() if rest is None else rest


def strip_room_prefix(text: str, nick: str) -> str | None:
    """The command in a room message, or None when the message is not addressed to the bot:
    it must start with `!addin` or with the bot's nickname followed by `:` or `,`."""
    stripped = text.lstrip()
    rest = _after_prefix(stripped)
    if rest is not None:
        return rest
    for mark in (":", ","):
        if nick and stripped[: len(nick) + 1].casefold() == (nick + mark).casefold():
            said = stripped[len(nick) + 1 :].strip()
            after = _after_prefix(said)  # "AddinBot: !addin show" means "show" too
            return said if after is None else after
    return None


def _after_prefix(text: str) -> str | None:
    if text[: len(PREFIX)].lower() != PREFIX:
        return None
    rest = text[len(PREFIX) :]
    if rest and not rest[0].isspace():
        return None  # "!addins" is somebody else's word
    return rest.strip()


def split_words(text: str) -> list[str]:
    """Split like a shell: white space separates, double (or single) quotes group."""
    if len(text) > MAX_COMMAND_CHARS:
        raise CommandError(msg(
            "That command is too long (at most {most} characters).", most=MAX_COMMAND_CHARS
        ))
    if "\x00" in text:
        raise CommandError(msg("Commands must not contain NUL characters."))
    try:
        words = shlex.split(text, posix=True)
    except ValueError:
        raise CommandError(msg("Unbalanced quotes: close every \" you open.")) from None
    if len(words) > MAX_WORDS:
        raise CommandError(
            msg("That command has too many words (at most {most}).", most=MAX_WORDS)
        )
    return words


class WordKind(enum.Enum):
    """What a word names. Chat reads every kind as a word; the command line and the forms
    ask for each kind in their own way (a room: a JID field, or the rooms one manages)."""

    TEXT = "text"
    ADDIN = "add-in"  # a registered add-in's name
    URL = "url"
    ROOM = "room"  # a room address, room@service
    SERVED_ROOM = "served room"  # a room the bot serves
    POOL = "pool"  # an option: `pool <pool>`
    PAGE = "page"  # an option: `page <n>`
    COUNT = "count"  # a number
    FLAG = "flag"  # a bare word: `force`


@dataclass(frozen=True)
class Word:
    name: str
    kind: WordKind = WordKind.TEXT
    label: str = ""  # how a form asks for it (default: the name)
    choices: tuple[str, ...] = ()  # the only values it may take, where it has so few

    @property
    def asked(self) -> str:
        return self.label or self.name.capitalize()


# The words the commands take.
NAME = Word("name", label="Name")  # a new add-in's name
ADDIN = Word("name", WordKind.ADDIN, "Add-in")
URL = Word("url", WordKind.URL, "URL (http or https)")
ROOM = Word("room", WordKind.ROOM, "Room")
SERVED_ROOM = Word("room", WordKind.SERVED_ROOM, "Room")
POOL = Word("pool", WordKind.POOL, "Pool")
PAGE = Word("page", WordKind.PAGE, "Page")
COUNT = Word("n", WordKind.COUNT, "How many")
FORCE = Word("force", WordKind.FLAG, "Also detach it from the rooms using it")
COMMAND = Word("command")
ADD_MANAGER = Word("add", label="Name as a manager (bare JID)")
REMOVE_MANAGER = Word("remove", label="No longer a manager (bare JID)")
PIN_STATE = Word("state", label="Keep the add-in on the subject", choices=("on", "off"))
MUTE_WHERE = Word("where", label="A room, or all (default: all)")


@dataclass(frozen=True)
class Signature:
    """What a command takes: required words in order, optional ones, `keyword <value>` options
    (e.g. `pool <pool>`) and bare flags (e.g. `force`).

    Required words are taken first, so an add-in may itself be called "pool" or "force".
    """

    required: tuple[Word, ...] = ()
    optional: tuple[Word, ...] = ()
    options: tuple[Word, ...] = ()
    flags: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Arguments:
    words: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()

    def __getitem__(self, name: str) -> str:
        return self.words[name]

    def get(self, name: str) -> str | None:
        return self.words.get(name, self.options.get(name))


def match(signature: Signature, words: list[str]) -> Arguments:
    """Match the words after the command name; raises CommandError (the caller adds usage)."""
    if len(words) < len(signature.required):
        missing = signature.required[len(words)].name
        raise CommandError(msg("Missing <{word}>.", word=missing))
    given = {word.name: said for word, said in zip(signature.required, words, strict=False)}
    for wanted in signature.required:
        said = given[wanted.name]
        if wanted.choices and said.lower() not in wanted.choices:
            quoted = [f"“{choice}”" for choice in wanted.choices]
            choices = quoted[0] if len(quoted) == 1 else msg(
                "{some} or {last}", some=", ".join(quoted[:-1]), last=quoted[-1]
            )
            raise CommandError(
                msg("Say {choices}, not “{said}”.", choices=choices, said=_short(said, 20))
            )
    rest = words[len(signature.required) :]
    options: dict[str, str] = {}
    flags: set[str] = set()
    optional = [word.name for word in signature.optional]
    keywords = {word.name for word in signature.options}
    bare = {word.name for word in signature.flags}
    index = 0
    while index < len(rest):
        word, lower = rest[index], rest[index].lower()
        if lower in keywords:
            if lower in options:
                raise CommandError(msg("“{word}” is given twice.", word=lower))
            if index + 1 >= len(rest):
                raise CommandError(msg("“{word}” needs a value.", word=lower))
            options[lower] = rest[index + 1]
            index += 2
            continue
        if lower in bare:
            flags.add(lower)
        elif optional:
            given[optional.pop(0)] = word
        else:
            raise CommandError(msg("Unexpected “{word}”.", word=_short(word)))
        index += 1
    return Arguments(given, options, frozenset(flags))


def _short(word: str, limit: int = 40) -> str:
    return word if len(word) <= limit else word[: limit - 1] + "…"
