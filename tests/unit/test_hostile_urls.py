"""Hostile URLs through every way in: chat (the dispatcher and the whole bot, in process, on a
real SQLite store) and the command line (in process, and a few real `python -m bot` runs).

Each URL of the corpus is refused with its reason — the same sentence whichever way it came —
and nothing is stored. Any URL the rules accept is announced exactly as it is stored: the
room's sentence and its out-of-band link carry the stored text, byte for byte.
(The few that go over a real Prosody are in tests/integration/test_hostile_input.py.)
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings

from bot import addins, cli
from bot.announce import attached_sentence
from bot.app import App
from bot.commands.direct import DIRECT
from bot.commands.registry import Dispatcher
from bot.commands.room import ROOM as ROOM_COMMANDS
from bot.config import Settings
from bot.errors import CommandError
from bot.rooms import SELF, Rooms
from bot.urls import validate_url
from bot.values import Kind, Link, Message, Place, Presence, Sender
from store import Store as Database
from tests.fakes import FakeEdge
from tests.unit.test_urls import _URLS

POOL = "conference.localhost"
ROOM = f"dev@{POOL}"
ADMIN = "admin@localhost"
EXISTING = "Existing"
EXISTING_URL = "https://existing.example.org/panel"
GOOD = "https://good.example/"

SCHEME = "only http and https are allowed"
START = "it must start with http:// or https://"
USERINFO = "a user name or password part is not allowed"
LOOKALIKE = "it contains look-alike characters"
SPACE = "it contains white space"
CONTROL = "it contains a control, bidirectional or zero-width character"
MIXED = "a host name label mixes scripts"
IMITATES = "a host name label imitates Latin letters with another script"
NO_HOST = "it has no host"
TOO_LONG = "it is longer than 2048 characters"
PORT = "the port must be a number from 1 to 65535"
IPV6 = "the IPv6 address is malformed"
BAD_CHAR = "the host name contains a character that is not allowed"
BACKSLASH = "it contains a backslash"
DOTTED = "the host looks like an IP address but is not a plain dotted quad"

# (url, the reason it is refused for): every kind the product contract names, and then some.
HOSTILE: list[tuple[str, str]] = [
    # schemes other than http and https, in any case
    ("javascript:alert(1)", SCHEME),
    ("JAVASCRIPT:alert(1)", SCHEME),
    ("jAvAsCrIpT:alert(document.domain)", SCHEME),
    ("javascript://example.org/%0Aalert(1)", SCHEME),
    ("data:text/html,<script>alert(1)</script>", SCHEME),
    ("DATA:text/html;base64,PHNjcmlwdD4=", SCHEME),
    ("file:///etc/passwd", SCHEME),
    ("FILE://host/share", SCHEME),
    ('vbscript:msgbox("x")', SCHEME),
    ("VbScript:Execute", SCHEME),
    ("ftp://files.example.org/", SCHEME),
    ("hxxps://evil.example/", SCHEME),
    # scheme-relative and mangled openings
    ("//evil.example/path", START),
    ("///evil.example", START),
    ("https:evil.example", START),
    ("https:/evil.example", START),
    ("HTTPS:/\\evil.example", BACKSLASH),
    # a user name (or password) in front of the real host
    ("https://good.example@evil.example", USERINFO),
    ("https://good.example:443@evil.example/", USERINFO),
    ("https://user:password@good.example/", USERINFO),
    ("https://:@/", USERINFO),
    ("https://good.example%40evil.example/", BAD_CHAR),
    ("https://good.example\\@evil.example/", BACKSLASH),
    # full-width look-alikes of @ / # :
    ("https://good.example＠evil.example", LOOKALIKE),
    ("https://evil.example／good.example", LOOKALIKE),
    ("https://good.example＃@evil.example", LOOKALIKE),
    ("https：／／evil.example", LOOKALIKE),
    ("https://ｇｏｏｇｌｅ.com/", LOOKALIKE),
    # white space: leading, trailing, embedded; tab, CR, LF, no-break and em spaces
    (" https://good.example/", SPACE),
    ("https://good.example/ ", SPACE),
    ("https://good.example/a b", SPACE),
    ("\thttps://good.example/", SPACE),
    ("https://good.example/\tx", SPACE),
    ("https://good.example/\rx", SPACE),
    ("https://good.example/\nx", SPACE),
    ("https://good.example\r\n.evil.example/", SPACE),
    ("https://good.example/\u00a0", SPACE),
    ("https://good.example/\u2003", SPACE),
    # C0, DEL, C1
    ("https://good.example/\x00", CONTROL),
    ("https://good\x01.example/", CONTROL),
    ("https://good.example/\x1b[2J", CONTROL),
    ("https://good.example/\x7f", CONTROL),
    ("https://good.example/\x80", CONTROL),
    ("https://good.example/\x9b31m", CONTROL),
    # bidirectional and zero-width characters
    ("https://good.example/\u202egnp.exe", CONTROL),
    ("https://\u202dgood.example/", CONTROL),
    ("https://good.example/\u2067x\u2069", CONTROL),
    ("https://good.example/\u200f", CONTROL),
    ("https://go\u200bod.example/", CONTROL),
    ("https://good.example/\u200c", CONTROL),
    ("https://good.example/\u2060", CONTROL),
    ("\ufeffhttps://good.example/", CONTROL),
    # mixed-script and confusable international host names, raw and pre-encoded
    ("https://pаypal.com/", MIXED),
    ("https://xn--pypal-4ve.com/", MIXED),
    ("https://gοοgle.com/", MIXED),
    ("https://аррӏе.com/", IMITATES),
    ("https://xn--80ak6aa92e.com/", IMITATES),
    ("https://ѕсоре.com/", IMITATES),
    ("https://раураӏ.com/", IMITATES),
    # no host
    ("https://", NO_HOST),
    ("https:///evil.example", NO_HOST),
    ("http://:8080/", NO_HOST),
    ("https://?q=1", NO_HOST),
    ("https://#frag", NO_HOST),
    # too long
    (GOOD + "a" * (2049 - len(GOOD)), TOO_LONG),
    ("https://" + "a" * 2100 + ".example/", TOO_LONG),
    # odd ports
    ("https://good.example:0/", PORT),
    ("https://good.example:65536/", PORT),
    ("https://good.example:-443/", PORT),
    ("https://good.example:+443/", PORT),
    ("https://good.example:443:443/", PORT),
    ("https://good.example:/", PORT),
    ("https://good.example:http/", PORT),
    ("https://good.example:٤٤٣/", PORT),
    # brackets
    ("https://[::1/", IPV6),
    ("https://[::1]]/", IPV6),
    ("https://[evil.example]/", IPV6),
    ("https://[::1]evil.example/", IPV6),
    ("https://[]/", IPV6),
    ("https://good.example]/", BAD_CHAR),
    ("https://[fe80::1%25eth0]/", "an IPv6 zone id is not allowed"),
    # numbers a browser would read as an address
    ("http://0x7f000001/", DOTTED),
    ("http://2130706433/", DOTTED),
]

# Accepted URLs whose text is awkward on the way to the announcement: XML's special characters
# (the announcement is an XML stanza), shell quotes (chat splits words like a shell), `@` and
# `//` after the host, an encoded international host.
AWKWARD_ACCEPTED = [
    "https://example.org/a?b=1&c=<2>&d=\"3\"&e='4'",
    "https://example.org/p?next=https://other.example/&x=%00%0A",
    "https://medium.example/@someone#top",
    "http://[2001:db8::1]:8080/x?y=z",
    "https://BÜCHER.example/strasse",
    "https://example.org/%E2%80%AEgnp.exe",
    "https://example.org/~user/{a}|b^c`d",
]


IDS = [repr(url)[:40] for url, _reason in HOSTILE]


def test_the_corpus_is_broad_and_every_url_is_refused_by_the_rules() -> None:
    assert len(HOSTILE) >= 50
    assert len({url for url, _ in HOSTILE}) == len(HOSTILE), "no duplicates"
    for url, reason in HOSTILE:
        with pytest.raises(CommandError) as caught:
            validate_url(url)
        assert caught.value.reason == f"URL refused: {reason}.", url


# --- chat: the dispatcher, with the real commands and a real store --------------------------


def make_settings(store: str, **sections: object) -> Settings:
    values: dict[str, object] = {
        "xmpp": {"jid": "addinbot@localhost", "password": "pw", "host": "127.0.0.1",
                 "tls": "plain"},
        "store": {"url": store},
        "roles": {"admins": [ADMIN]},
        "pools": {"names": [POOL]},
        "limits": {"sender": 0, "room": 0},
    }
    values.update(sections)
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class Store:
    """One SQLite database for the module: the chat and command-line cases share it."""

    path: Path
    engine: Database
    config: Path

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def snapshot(self) -> tuple[object, ...]:
        page = addins.list_addins(self.engine, pool=POOL)
        rooms = addins.list_rooms(self.engine)
        audit = addins.audit(self.engine, limit=10_000)
        return (
            page.items, tuple((r.jid, r.addin, r.url) for r in rooms),
            tuple(e.id for e in audit),
        )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("hostile-urls")
    path = folder / "addinbot.db"
    engine = Database.open(f"sqlite:///{path}")
    engine.upgrade()
    addins.register(
        engine, addins.Actor(ADMIN, "dm"), pool=POOL, name=EXISTING, url=EXISTING_URL
    )
    addins.attach(engine, addins.Actor(ADMIN, "dm"), room=ROOM, name=EXISTING)
    config = folder / "addinbot.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{path}"\n[roles]\nadmins = ["{ADMIN}"]\n'
        f'[pools]\nnames = ["{POOL}"]\n',
        encoding="utf-8",
    )
    yield Store(path, engine, config)
    engine.close()


def dispatcher(store: Store) -> Dispatcher:
    rooms = Rooms()
    rooms.joining(ROOM, "AddinBot")
    rooms.update(Presence(ROOM, "olivia", True, "owner", "moderator", "olivia@localhost"))
    rooms.update(Presence(ROOM, "AddinBot", True, codes=frozenset({SELF})))
    commands = {Place.DIRECT: DIRECT, Place.ROOM: ROOM_COMMANDS}
    return Dispatcher(
        make_settings(store.url), store.engine, rooms, commands, changed=lambda changes: None
    )


def chat_reason(url: str) -> str:
    """What chat must answer: the URL's refusal, or — for NUL, which no command may carry —
    the command's."""
    if "\x00" in url:
        return "Commands must not contain NUL characters."
    with pytest.raises(CommandError) as caught:
        validate_url(url)
    return caught.value.reason


@pytest.mark.parametrize(("url", "reason"), HOSTILE, ids=IDS)
async def test_chat_refuses_a_hostile_url_and_stores_nothing(
    store: Store, url: str, reason: str
) -> None:
    before = store.snapshot()
    run = dispatcher(store).run
    admin = Sender(ADMIN)
    quoted = shlex.quote(url)
    for command in (
        f"register Hostile {quoted}",
        f"register Hostile {quoted} pool {POOL}",
        f"update {EXISTING} url {quoted}",
    ):
        reply = await run(Place.DIRECT, admin, command)
        assert reply is not None
        assert reply.text == chat_reason(url), command
        assert not reply.public
        assert reply.link is None
    assert store.snapshot() == before


# --- the command line, in process (one shared config and database) -------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("url", "reason"), HOSTILE, ids=IDS)
def test_the_command_line_refuses_a_hostile_url_like_chat(
    store: Store, capsys: pytest.CaptureFixture[str], url: str, reason: str
) -> None:
    before = store.snapshot()
    config = str(store.config)
    expected = f"URL refused: {reason}.\n"
    for argv in (
        ("addin", "register", "Hostile", url, "--config", config),
        ("--config", config, "addin", "update", EXISTING, "url", url),
    ):
        code, out, err = run_cli(capsys, *argv)
        assert (code, out, err) == (1, "", expected), argv
    assert store.snapshot() == before


def test_a_real_command_line_run_refuses_hostile_urls(store: Store) -> None:
    """`python -m bot` as a shell would start it (argv cannot carry NUL, so none has it)."""
    chosen = [
        ("javascript:alert(1)", SCHEME),
        ("https://good.example@evil.example", USERINFO),
        ("https://good.example/\u202egnp.exe", CONTROL),
    ]
    before = store.snapshot()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADDINBOT_")}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "bot", "addin", "register", f"Hostile{n}", url,
             "--config", str(store.config)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
            encoding="utf-8",
        )
        for n, (url, _reason) in enumerate(chosen)
    ]
    for process, (url, reason) in zip(processes, chosen, strict=True):
        out, err = process.communicate(timeout=60)
        assert (process.returncode, out, err) == (1, "", f"URL refused: {reason}.\n"), url
    assert store.snapshot() == before


# --- accepted URLs: stored exactly as announced --------------------------------------------


_names = itertools.count()


async def round_trip(store: Store, url: str) -> tuple[str, str, Link | None, str]:
    """Register `url` and attach it by chat through the whole bot (recognition, quoting,
    dispatch, store, announcer); return the stored URL, the announcement and what
    `register` and `list` said."""
    name = f"Round trip {next(_names)}"
    recorder = FakeEdge()
    app = App(make_settings(store.url), store.engine, recorder)
    await app.start()
    try:
        app.rooms.joining(ROOM, "AddinBot")
        app.rooms.update(Presence(ROOM, "AddinBot", True, codes=frozenset({SELF})))
        app.on_message(Message(Kind.DIRECT, f'register "{name}" {shlex.quote(url)}', jid=ADMIN))
        registered = (await recorder.take("direct", lambda s: "Registered" in s.text)).text
        app.on_message(Message(Kind.DIRECT, f'attach {ROOM} "{name}"', jid=ADMIN))
        await recorder.take("direct", lambda s: "now has the add-in" in s.text)
        announced = await recorder.take("room")
        said, link = announced.text, announced.link
        assert announced.to == ROOM
        stored = addins.show(store.engine, pool=POOL, name=name).url
        return stored, said, link, registered
    finally:
        await app.stop()


def check_round_trip(store: Store, url: str) -> None:
    stored, said, link, registered = asyncio.run(round_trip(store, url))
    assert stored == validate_url(url)
    name = registered.split("“", 1)[1].split("”", 1)[0]
    assert registered == f"Registered “{name}” in {POOL}: {stored}"
    assert said == attached_sentence(name, stored)
    assert link == Link(stored, name)


def accepted(url: str) -> bool:
    try:
        validate_url(url)
    except CommandError:
        return False
    return True


@pytest.mark.parametrize("url", AWKWARD_ACCEPTED)
def test_an_awkward_accepted_url_is_announced_exactly_as_stored(store: Store, url: str) -> None:
    check_round_trip(store, url)


@settings(
    max_examples=40, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(url=_URLS)
def test_any_accepted_url_is_announced_exactly_as_stored(store: Store, url: str) -> None:
    assume(accepted(url))
    check_round_trip(store, url)
