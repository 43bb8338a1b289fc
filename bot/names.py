"""Names as the bot holds them: add-in names (checked, and folded for comparing), pools, and
room addresses in the form the XMPP server uses. Plain functions; a refusal is a
CommandError with the sentence the user reads.
"""

from __future__ import annotations

import functools
import re
import stringprep
import unicodedata
from collections.abc import Sequence

import disarm

from bot.errors import CommandError
from bot.i18n import msg

MAX_NAME = 64
MAX_NAME_KEY = 256  # the name_key column
MAX_ROOM_LOCAL = 1023  # bytes, as for any JID local part


# What XML 1.0 cannot carry at all (its Char production), and besides that what breaks a
# line: C0/C1 controls, U+2028/U+2029. A stanza holding the first makes the server close the
# stream; a log or audit line holding the second reads as two.
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
NOT_ONE_LINE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff\U0010fffe\U0010ffff]"
)
REPLACEMENT = "\ufffd"


def one_line(text: str, *, what: str) -> str:
    """`text` unchanged when it is one line every XML stream can carry; else refused."""
    if NOT_ONE_LINE.search(text) or NOT_XML.search(text):
        raise CommandError(
            msg("{what} must not contain control characters or line breaks.", what=what)
        )
    return text


def audit_line(text: str) -> str:
    """`text` as one audit line: what cannot be one line of XML text replaced by U+FFFD."""
    return NOT_XML.sub(REPLACEMENT, NOT_ONE_LINE.sub(REPLACEMENT, text))


def validate_name(raw: str, *, what: str | None = None) -> str:
    """1–64 characters, no control, format (bidi, zero-width) or line-break characters."""
    what = what or msg("Add-in name")
    name = unicodedata.normalize("NFC", raw)
    if not name or len(name) > MAX_NAME:
        raise CommandError(
            msg("{what} must be 1 to {most} characters long.", what=what, most=MAX_NAME)
        )
    if name != name.strip():
        raise CommandError(msg("{what} must not start or end with white space.", what=what))
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            raise CommandError(
                msg("{what} must not contain control or invisible characters.", what=what)
            )
    scripts = scripts_of(name)
    if len(scripts) > 1 and not any(scripts <= allowed for allowed in _SCRIPT_MIXES):
        raise CommandError(msg(
            "{what} mixes scripts ({scripts}); write it in one, so that no name can pass "
            "for another.", what=what, scripts=", ".join(sorted(scripts)),
        ))
    skeleton = name_skeleton(name)
    if not skeleton.strip():
        raise CommandError(
            msg("{what} must hold a letter, digit or sign that can be seen.", what=what)
        )
    if max(len(name_key(name)), len(skeleton)) > MAX_NAME_KEY:  # U+FDFA spells out as 18
        raise CommandError(
            msg("{what} is too long once its characters are spelled out.", what=what)
        )
    return name


# UTS #39 "highly restrictive": one script, or Latin with one of the scripts of Japanese,
# Chinese or Korean writing (Common and Inherited characters, like digits, go with any).
_SCRIPT_MIXES = (
    frozenset({"Latin", "Han", "Hiragana", "Katakana"}),
    frozenset({"Latin", "Han", "Bopomofo"}),
    frozenset({"Latin", "Han", "Hangul"}),
)


def scripts_of(name: str) -> frozenset[str]:
    """The scripts of a name's letters (UCD Script of its compatibility form: a full-width
    "Ｓ" is Latin), without Common and Inherited."""
    found = disarm.detect_scripts(unicodedata.normalize("NFKC", name))
    return frozenset(script.name.title() for script in found)


def name_key(name: str) -> str:
    """How names are looked up and sorted: case-insensitively, full-width and other
    compatibility forms folded ("stock" finds "ＳＴＯＣＫ")."""
    return unicodedata.normalize("NFKC", name).casefold()


def name_skeleton(name: str) -> str:
    """What makes two names one in a pool: their UTS #39 confusable skeleton (Unicode's
    confusables.txt, through disarm), case and compatibility forms folded, "0" and "1" with
    the letters they pass for — so "Stocks", "ＳＴＯＣＫＳ" and "Ѕтоскѕ" (Cyrillic) cannot
    all be add-ins of one pool."""
    return disarm.skeleton_key(name, digit_policy="tr39")


def resolve_pool(served: Sequence[str], given: str | None, *, spelled: str = "pool <pool>") -> str:
    """The pool a command means: the one named (it must be served), or the only one.
    `spelled`: how the asker names one (chat's `pool <pool>`, the command line's --pool)."""
    if given is not None:
        pool = given.strip().lower()
        if pool not in served:
            raise CommandError(msg(
                "Pool {pool} is not served here; served: {served}.",
                pool=given, served=", ".join(served),
            ))
        return pool
    if len(served) == 1:
        return served[0]
    if not served:
        raise CommandError(msg("No pool is configured (pools.names)."))
    raise CommandError(msg(
        "Name the pool ({spelled}): this bot serves {served}.",
        spelled=spelled, served=", ".join(served),
    ))


def resolve_room(served: Sequence[str], raw: str) -> str:
    """A room JID (room@service) in one of the served pools, written as XMPP servers write
    it: the room name in its nodeprep form (case and compatibility forms folded), the service
    in lower case. What cannot be a JID at all is refused here, never stored."""
    room = room_address(raw, example=f"room@{served[0] if served else 'muc'}")
    service = pool_of(room)
    if service not in served:
        raise CommandError(msg(
            "Room {room} is not in a served pool ({served}).", room=room, served=", ".join(served)
        ))
    return room


def bare_jid(raw: str) -> str:
    """A person's bare JID (user@domain) as servers write it (as room_address does a room's:
    the same preparation, so that it compares equal to the JID a room or server reports)."""
    try:
        return room_address(raw)
    except CommandError:
        raise CommandError(
            msg("“{raw}” is not a bare JID (user@domain).", raw=raw[:60])
        ) from None


def room_address(raw: str, *, example: str = "room@service") -> str:
    """room@service in the one form the bot uses everywhere: the server's (nodeprep with
    Unicode 3.2's tables, as Prosody and ejabberd prepare a JID), the service in lower case.
    A name that newer Unicode tables (slixmpp's, many clients') fold to another room — a
    letter added after Unicode 3.2, like "ᵃ" for "a" — is refused: the bot would track one
    room and send to the other."""
    room = raw.strip().lower()
    not_room = msg("{raw} is not a room address ({example}).", raw=raw, example=example)
    local, at, service = room.partition("@")
    if not at or not local or not service or "/" in room or any(c.isspace() for c in room):
        raise CommandError(not_room)
    prepped = _nodeprep(local)
    if prepped is None:
        raise CommandError(not_room)
    if prepped != _nodeprep_today(local):
        raise CommandError(msg(
            "{raw} is not a room address the bot accepts: XMPP software disagrees on what "
            "room it names (it uses characters newer than Unicode 3.2).", raw=raw,
        ))
    if len(prepped.encode("utf-8")) > MAX_ROOM_LOCAL:
        raise CommandError(
            msg("A room name may be at most {most} bytes long.", most=MAX_ROOM_LOCAL)
        )
    return f"{prepped}@{service}"


_NODE_PUNCTUATION = frozenset("\"&'/:<>@")  # RFC 3920 nodeprep: not in a JID's local part


_NODE_PROHIBITED = (
    stringprep.in_table_c11, stringprep.in_table_c12, stringprep.in_table_c21,
    stringprep.in_table_c22, stringprep.in_table_c3, stringprep.in_table_c4,
    stringprep.in_table_c5, stringprep.in_table_c6, stringprep.in_table_c7,
    stringprep.in_table_c8, stringprep.in_table_c9,
)


@functools.lru_cache(maxsize=4096)  # rooms are named again and again; stringprep is slow
def _nodeprep(local: str) -> str | None:
    """A JID's local part as servers and clients hold it (RFC 3920 nodeprep, stringprep
    tables B.1, B.2, NFKC, C.*, bidi), or None when it cannot be one."""
    prepped = unicodedata.ucd_3_2_0.normalize("NFKC", _mapped(local))
    if not prepped or any(
        char in _NODE_PUNCTUATION or any(prohibited(char) for prohibited in _NODE_PROHIBITED)
        for char in prepped
    ):
        return None
    right_to_left = [stringprep.in_table_d1(char) for char in prepped]
    if any(right_to_left) and (
        any(stringprep.in_table_d2(char) for char in prepped)
        or not (right_to_left[0] and right_to_left[-1])
    ):
        return None
    return prepped


def _mapped(local: str) -> str:
    return "".join(
        stringprep.map_table_b2(char) for char in local if not stringprep.in_table_b1(char)
    )


@functools.lru_cache(maxsize=4096)
def _nodeprep_today(local: str) -> str:
    """The same mapping with today's Unicode tables, as newer XMPP libraries apply it."""
    return unicodedata.normalize("NFKC", _mapped(local))


def pool_of(room: str) -> str:
    return room.partition("@")[2]
