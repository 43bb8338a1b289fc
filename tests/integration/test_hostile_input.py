"""Hostile input, against a real Prosody: error stanzas, oversized and malformed lines, hostile
URLs, and two thousand generated command lines from an admin, a room manager and a stranger.

The bot must never act on an error, must answer anything oversized with one short error and
stay responsive, must store no URL it did not validate (and announce exactly what it stored),
and under a stream of generated commands must neither crash nor change anything it does not
both audit and confirm to the sender.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from slixmpp import Message

from bot import addins, cli
from bot.announce import attached_sentence
from bot.commands.grammar import split_words, strip_room_prefix
from bot.errors import CommandError
from bot.names import name_key
from bot.urls import validate_url
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import TestClient
from tests.integration.conftest import BotHandle, create_room, jid
from tests.integration.test_spoofing import (
    NICK,
    Scene,
    Witness,
    answered_first,
    anything_from_bot,
    from_bot,
    message,
    new_id,
    said_in_room,
    send_raw,
    service,
    snapshot,
    told_privately,
)
from tests.unit.test_hostile_urls import (
    AWKWARD_ACCEPTED,
    CONTROL,
    IMITATES,
    LOOKALIKE,
    SCHEME,
    SPACE,
    TOO_LONG,
    USERINFO,
)

pytestmark = pytest.mark.xmpp

NAME, URL = "Stock Ticker", "https://stocks.example.org/panel"
QUIET_S = 0.5
PROMPT_S = 2.0  # a `list` after an attack is answered within this (on a loaded CI machine)
TOO_LONG_COMMAND = "That command is too long (at most 4096 characters)."
TOO_MANY_WORDS = "That command has too many words (at most 64)."
FAILED = "Sorry, something went wrong"

People = Callable[[str], Awaitable[TestClient]]


@pytest.fixture
def scene(bot: BotHandle, people: People, prosody: Prosody) -> Scene:
    return Scene(bot, people, prosody)


async def still_responsive(client: TestClient, bot_jid: str, prosody: Prosody) -> None:
    started = time.monotonic()
    reply = await client.ask(bot_jid, "list", timeout=5)
    assert reply.startswith((f"Add-ins in {prosody.muc}", "No add-ins are registered in")), reply
    assert time.monotonic() - started < PROMPT_S


# --- 9. messages of type error ------------------------------------------------------------

STANZA_ERRORS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def error(condition: str) -> str:
    return f"<error type='cancel'><{condition} xmlns='{STANZA_ERRORS}'/></error>"


async def test_messages_of_type_error_are_never_acted_on(
    scene: Scene, bot: BotHandle, people: People, prosody: Prosody, room: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await scene.register()
    alice, bob = await scene.occupy(room, "alice", "bob")
    witness = Witness(bot, monkeypatch)
    admin, mallory = await people("admin"), await people("mallory")
    to = scene.bot_jid
    full = str(service(bot).edge.boundjid)  # a bounce comes to the resource that sent
    before = snapshot(bot)

    ids = []
    for client in (admin, mallory):
        # A bounce that carries a command's body back, and one that carries a question:
        # neither is obeyed nor answered (no one is ever told off for an error, so two bots
        # can never bounce errors at each other).
        for body in ("register Bounced https://bounced.example/", "list", "help"):
            ids.append(new_id())
            send_raw(client, message(full, body, error("service-unavailable"), kind="error",
                                     stanza_id=ids[-1]))
    # Through the room, with a condition the room passes on (it kicks for others): the room
    # owner's error-typed private message carrying a command.
    ids.append(new_id())
    send_raw(alice, message(f"{room}/{NICK}", f'attach "{NAME}"', error("not-acceptable"),
                            kind="error", stanza_id=ids[-1]))

    await answered_first(admin, to)
    await answered_first(mallory, to)
    await witness.until("the owner's error", lambda: witness.reached(ids[-1]))
    for stanza_id in ids:
        assert witness.reached(stanza_id)
        assert [value for _xml, value in witness.by_id(stanza_id)] == [None]
    await alice.expect_no_message(QUIET_S, anything_from_bot(room))
    await bob.expect_no_message(0, anything_from_bot(room))
    assert snapshot(bot) == before
    # The owner is still in the room and still heard.
    alice.send_groupchat(room, f'!addin attach "{NAME}"')
    assert await said_in_room(bob, room) == attached_sentence(NAME, URL)


# --- 10. oversized lines, NUL, control characters -----------------------------------------


async def test_an_oversized_line_gets_one_short_error_and_the_bot_stays_responsive(
    scene: Scene, bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    (alice, mallory) = await scene.occupy(room, "alice", "mallory")
    admin = await people("admin")
    to = scene.bot_jid
    before = snapshot(bot)
    huge = f"register Big {URL} " + "x" * (200 * 1024)  # 200 KiB, under Prosody's 256 KiB
    wordy = "register " + " ".join(f"w{n}" for n in range(10_000))
    many = "register " + " ".join(["w"] * 100)
    for client, body, answer in [
        (admin, huge, TOO_LONG_COMMAND),
        (mallory, huge, TOO_LONG_COMMAND),
        (admin, wordy, TOO_LONG_COMMAND),
        (admin, many, TOO_MANY_WORDS),
        (admin, "!addin " + huge, TOO_LONG_COMMAND),
    ]:
        assert await client.ask(to, body, timeout=10) == answer
        await answered_first(client, to)  # and only one answer
        await still_responsive(admin, to, prosody)

    mallory.send_groupchat(room, "!addin " + huge)
    assert await told_privately(mallory, room) == TOO_LONG_COMMAND
    mallory.send_groupchat(room, "!addin " + " ".join(["w"] * 100))
    assert await told_privately(mallory, room) == TOO_MANY_WORDS
    mallory.send_groupchat(room, huge)  # conversation, however long: not a command
    await mallory.expect_no_message(QUIET_S, anything_from_bot(room))
    await alice.expect_no_message(0, anything_from_bot(room))
    await still_responsive(admin, to, prosody)
    assert snapshot(bot) == before


async def test_nul_cannot_travel_in_xml_and_only_its_sender_loses_the_stream(
    bot: BotHandle, people: People, prosody: Prosody, monkeypatch: pytest.MonkeyPatch
) -> None:
    """XML 1.0 has no NUL (nor most C0 controls), raw or as a character reference: the
    server ends the sender's stream as not well-formed, and the bot never sees a thing."""
    witness = Witness(bot, monkeypatch)
    admin = await people("admin")
    to = jid(prosody, "addinbot")
    before = snapshot(bot)
    for nul in ("\x00", "&#0;", "&#x1;", "\x1b"):
        carol = await people("carol")
        gone = asyncio.ensure_future(carol.wait_until("disconnected", 10))
        send_raw(carol, f"<message to='{to}' type='chat'><body>register Nul{nul}x {URL}"
                        "</body></message>")
        await gone
        await still_responsive(admin, to, prosody)
    assert not [xml for xml in witness.arrived if "Nul" in "".join(xml.itertext())]
    assert snapshot(bot) == before


async def test_control_characters_in_names_are_refused(
    bot: BotHandle, people: People, prosody: Prosody
) -> None:
    admin = await people("admin")
    to = jid(prosody, "addinbot")
    assert (await admin.ask(to, f"register Good {URL}")).startswith("Registered")
    before = snapshot(bot)
    invisible = "Add-in name must not contain control or invisible characters."
    # What XML can carry: C1 controls, DEL, tab, line breaks, format characters. (CR
    # arrives as LF: XML turns line ends into LF on the way.)
    for name, answer in [
        ("Bad\x85Name", invisible),
        ("Bad\x9bName", invisible),
        ("Bad\x7fName", invisible),
        ("Bad\tName", invisible),
        ("Bad\nName", invisible),
        ("Bad\rName", invisible),
        ("Bad\u2028Name", invisible),
        ("Bad\u200bName", invisible),
        ("Bad\u202eName", invisible),
        ("Bad\ufeffName", invisible),
        ("\tBad", "Add-in name must not start or end with white space."),
        ("Bad\u00a0", "Add-in name must not start or end with white space."),
    ]:
        quoted = shlex.quote(name)
        assert await admin.ask(to, f"register {quoted} {URL}") == answer, repr(name)
        renamed = await admin.ask(to, f"update Good name {quoted}")
        assert renamed == answer.replace("Add-in name", "New name"), repr(name)
    await still_responsive(admin, to, prosody)
    assert snapshot(bot) == before


async def test_digits_that_int_cannot_read_are_refused_not_an_internal_error(
    bot: BotHandle, people: People, prosody: Prosody
) -> None:
    """The digit "²" passes str.isdigit() but not int(): it once cost an internal error."""
    admin = await people("admin")
    to = jid(prosody, "addinbot")
    for body, most, usage in (("audit ²", 200, "audit [<n>]"),
                              ("list page ³", 1_000_000, "list [pool <pool>] [page <page>]"),
                              ("audit ①", 200, "audit [<n>]")):
        first = body.split()[-1]
        assert await admin.ask(to, body) == (
            f"Give a number from 1 to {most}, not “{first}”. Usage: {usage}"
        )
    assert (await admin.ask(to, "audit ٣")).startswith("No changes")  # Arabic-Indic 3: a number


async def test_a_room_address_is_taken_as_the_server_spells_it_or_not_at_all(
    bot: BotHandle, people: People, prosody: Prosody, room: str,
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    """A room name no JID can have is refused before it is stored (once stored, the bot
    choked on it at every join, restart and stop); one the server folds (case, width,
    invisible characters) is stored folded, so the bot serves the room it actually joins."""
    admin = await people("admin")
    to = jid(prosody, "addinbot")
    before = snapshot(bot)
    local = room.partition("@")[0]
    for bad in (f"a<b@{prosody.muc}", f"it's@{prosody.muc}", f"a:b@{prosody.muc}",
                f"x\u202e@{prosody.muc}", f"aא@{prosody.muc}"):
        quoted = shlex.quote(bad)
        for body in (f"join {quoted}", f"attach {quoted} Anything", f"leave {quoted}"):
            reply = await admin.ask(to, body)
            assert reply.startswith(f"{bad} is not a room address"), body
        code = cli.main(["room", "attach", bad, "Anything", "--config",
                         str(tmp_path / "addinbot.toml")])
        assert (code, capsys.readouterr().err) == (
            1, f"{bad} is not a room address (room@{prosody.muc}).\n"
        )
    assert snapshot(bot) == before

    folded = f"{local[:3]}\u200b{local[3:].upper()}@{prosody.muc}"  # zero-width, upper case
    await create_room(prosody, room)
    assert await admin.ask(to, f"join {folded}") == (
        f"Joining {room}; the bot will rejoin it after restarts."
    )
    await bot.in_room(room)
    assert (await admin.ask(to, "rooms")).startswith(f"• {room}")
    await still_responsive(admin, to, prosody)


# --- hostile URLs over the real bot, and accepted ones announced exactly -------------------

OVER_THE_WIRE = [
    ("javascript:alert(1)", SCHEME),
    ("https://good.example@evil.example", USERINFO),
    ("https://good.example＠evil.example", LOOKALIKE),
    ("https://good.example/\u202egnp.exe", CONTROL),
    ("https://go\u200bod.example/", CONTROL),
    ("https://good.example/\tx", SPACE),
    ("https://good.example/\u0085", SPACE),
    ("https://good.example/\x7f", CONTROL),
    ("https://аррӏе.com/", IMITATES),
    ("https://good.example/" + "a" * 2100, TOO_LONG),
]


async def test_hostile_urls_are_refused_over_the_wire(
    scene: Scene, bot: BotHandle, people: People, room: str
) -> None:
    await scene.register()
    alice, bob = await scene.occupy(room, "alice", "bob")
    admin = await people("admin")
    before = snapshot(bot)
    for url, reason in OVER_THE_WIRE:
        quoted = shlex.quote(url)
        for body in (f"register Hostile {quoted}", f'!addin update "{NAME}" url {quoted}'):
            assert await admin.ask(scene.bot_jid, body) == f"URL refused: {reason}.", body
    await bob.expect_no_message(QUIET_S, anything_from_bot(room))
    assert snapshot(bot) == before
    del alice


async def test_an_accepted_url_is_announced_exactly_as_stored(
    scene: Scene, bot: BotHandle, people: People, room: str
) -> None:
    alice, bob = await scene.occupy(room, "alice", "bob")
    for number, url in enumerate(AWKWARD_ACCEPTED):
        name = f"Awkward {number}"
        stored = validate_url(url)
        reply = await scene.admin(f'register "{name}" {shlex.quote(url)}')
        assert reply == f"Registered “{name}” in {room.partition('@')[2]}: {stored}"
        assert addins.show(service(bot).store, pool=room.partition("@")[2], name=name).url == (
            stored
        )
        alice.send_groupchat(room, f'!addin attach "{name}"')
        said: Message = await bob.next_message(predicate=from_bot(room, "groupchat"))
        assert said["body"] == attached_sentence(name, stored)
        assert said["oob"]["url"] == stored
        assert said["oob"]["desc"] == name
        await alice.next_message(predicate=from_bot(room, "groupchat"))


# --- 11. two thousand generated command lines ---------------------------------------------

TOTAL_LINES = 2000
A_NAMES = ["Alpha", "Beta Gamma", "Ｄｅｌｔａ", "delta", "Épsilon", "Zeta\u00a0Eta", "Theta “q”",
           "Iota's"]
M_NAMES = ["Mgr Xenon", "Mgr Yttrium"]  # the manager's: the admin's lines never name them
GOOD_URLS = ["https://alpha.example/a", "http://beta.example:8080/b?c=d&e=f",
             "https://bücher.example/x", "http://[2001:db8::1]/", "HTTPS://Gamma.Example/P"]
BAD_URLS = ["javascript:alert(1)", "https://a@b.example/", "https://x.example/\u202e",
            "https://ｘ.example/", "//x.example/", "https://аррӏе.com/", "https://x.example:0/"]
# Characters XML 1.0 can carry (the rest end the sender's stream: see the NUL test).
XML_ILLEGAL = "".join(chr(c) for c in range(0x20) if chr(c) not in "\t\n\r") + "\ufffe\uffff"
CHANNELS = ("admin dm", "manager dm", "manager room", "stranger dm", "stranger room")


@dataclass
class Rooms:
    live: str  # the manager's room; the admin's lines never name it
    others: list[str]  # rooms only the admin's lines name


def strategies(rooms: Rooms, muc: str) -> dict[str, st.SearchStrategy[str]]:
    text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"],
                                 exclude_characters=XML_ILLEGAL), min_size=1, max_size=24)
    word = st.one_of(text, st.sampled_from(
        ["pool", "page", "force", "url", "name", muc, "²", "٣", "0", "-1", "9" * 25, '"', "'"]
    ))

    def quoted(pair: tuple[str, str]) -> str:
        value, style = pair
        return {"plain": value, "double": f'"{value}"', "single": f"'{value}'",
                "open": f'"{value}'}[style]

    def q(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        styles = ["double", "double", "double", "double", "plain", "single", "open"]
        return st.tuples(values, st.sampled_from(styles)).map(quoted)

    def mostly(known: list[str], *others: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        """Mostly well-formed (so that commands succeed often), sometimes anything."""
        return st.one_of(*[st.sampled_from(known)] * 4, *others, text)

    a_name = q(mostly(A_NAMES))
    m_name = q(mostly(M_NAMES))
    url = q(mostly(GOOD_URLS, st.sampled_from(BAD_URLS)))
    room = mostly(rooms.others, st.sampled_from(
        [f"a<b@{muc}", "x@other.example", "not-a-room", rooms.others[0].upper(),
         f"a\u200bb@{muc}", f"it's@{muc}"]
    ))
    number = st.sampled_from(["", "1", "200", "201", "0", "-1", "²", "٣", "1e3", "9" * 25])
    pool = st.sampled_from(["", "", "", f" pool {muc}", " pool other.example", " pool",
                            " POOL " + muc])
    words = st.lists(q(word), min_size=1, max_size=6).map(" ".join)
    # Well-formed commands on a few names, so that many succeed and change things.
    clean_name = st.sampled_from(A_NAMES).map(lambda name: f'"{name}"')
    clean_url, clean_room = st.sampled_from(GOOD_URLS), st.sampled_from(rooms.others)
    clean = st.one_of(
        st.builds("register {} {}".format, clean_name, clean_url),
        st.builds("update {} url {}".format, clean_name, clean_url),
        st.builds("update {} name {}".format, clean_name, clean_name),
        st.builds("unregister {}{}".format, clean_name, st.sampled_from(["", " force"])),
        st.builds("attach {} {}".format, clean_room, clean_name),
        st.builds("detach {}".format, clean_room),
    )
    hostile = st.one_of(
        st.builds("register {} {}{}".format, a_name, url, pool),
        st.builds("update {} url {}{}".format, a_name, url, pool),
        st.builds("update {} name {}".format, a_name, a_name),
        st.builds("unregister {}{}".format, a_name,
                  st.sampled_from(["", " force", " FORCE", " pool x", " force force"])),
        st.builds("attach {} {}".format, room, a_name),
        st.builds("detach {}".format, room),
        st.builds("join {}".format, room),
        st.builds("leave {}".format, room),
        st.builds("list{}".format, st.sampled_from(["", " page 2", " page ²", " page 0",
                                                    " pool x", " page " + "9" * 25])),
        st.builds("show {}".format, a_name),
        st.builds("audit {}".format, number),
        st.sampled_from(["rooms", "help", "!addin", "!addin help", "rooms pool x"]),
        st.builds("help {}".format, word),
        words, text,
    )
    admin_dm = st.one_of(clean, clean, hostile)
    manager_dm = st.one_of(
        st.builds(f"attach {rooms.live} {{}}".format, m_name),
        st.just(f"detach {rooms.live}"),
        st.just(f"DETACH {rooms.live.upper()}"),
        admin_dm,
    )
    room_line = st.one_of(
        st.builds("!addin attach {}".format, m_name),
        st.sampled_from(["!addin detach", "!addin list", "!addin help", f"{NICK}, detach",
                         "!addin list page 2", "!addin help attach", "!ADDIN detach"]),
        st.builds(f"{NICK}: attach {{}}".format, m_name),
        st.builds("!addin {}".format, words), st.builds(f"{NICK}: {{}}".format, words),
        text,  # conversation
    )
    return {
        "admin dm": admin_dm, "manager dm": manager_dm, "manager room": room_line,
        "stranger dm": st.one_of(admin_dm, manager_dm), "stranger room": room_line,
    }


def is_show(line: str) -> bool:
    """A room line the bot answers in the room with the add-in: left out of the batch, so
    that what the room hears from the bot is only what changes it."""
    said = strip_room_prefix(line, NICK)
    if said is None:
        return False
    try:
        words = split_words(said)
    except CommandError:
        return False
    return not words or words[0].lower() == "show"


def generate(rooms: Rooms, muc: str) -> list[tuple[str, str]]:
    """TOTAL_LINES (channel, line) pairs, drawn by Hypothesis with a fixed seed: many small
    examples, each a batch of lines from any of the channels."""
    lines: list[tuple[str, str]] = []
    per_channel = strategies(rooms, muc)
    batch = st.lists(
        st.sampled_from(CHANNELS).flatmap(lambda ch: st.tuples(st.just(ch), per_channel[ch])),
        min_size=25, max_size=25, unique=True,
    )

    @seed(20261125)
    @settings(max_examples=TOTAL_LINES // 20, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(batch)
    def collect(drawn: list[tuple[str, str]]) -> None:
        lines.extend((ch, line) for ch, line in drawn if not (ch.endswith("room")
                                                            and is_show(line)))

    collect()
    assert len(lines) >= TOTAL_LINES, len(lines)
    return lines[:TOTAL_LINES]


# What a successful direct-message command says, and the audit actions it stands for.
SUCCESSES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], list[str]]]] = [
    (re.compile(r"Registered “.*” in \S+: \S+"), lambda m: ["register"]),
    (re.compile(r"“.*” now points to \S+"
                r"( — the (1 room using it is|\d+ rooms using it are) told)?"),
     lambda m: ["update-url"]),
    (re.compile(r"Renamed “.*” to “.*”\."), lambda m: ["rename"]),
    (re.compile(r"Unregistered “.*”\."), lambda m: ["unregister"]),
    (re.compile(r"Unregistered “.*” and detached it from (\d+) rooms?, which (was|were) "
                r"told: .+\."),
     lambda m: ["detach"] * int(m.group(1)) + ["unregister"]),
    (re.compile(r"\S+@\S+ now has the add-in “.*”: \S+?(\. The bot is not in \S+, so nobody "
                r"there is told; send the bot `join \S+` to serve the room\.)?"),
     lambda m: ["attach"]),
    (re.compile(r"\S+@\S+ no longer has the add-in “.*”\."), lambda m: ["detach"]),
    (re.compile(r"Joining \S+; the bot will rejoin it after restarts\."), lambda m: ["join"]),
    (re.compile(r"Leaving \S+\."), lambda m: ["leave"]),
]


def actions_confirmed(replies: list[str]) -> list[str]:
    actions: list[str] = []
    for reply in replies:
        for pattern, actions_of in SUCCESSES:
            found = pattern.fullmatch(reply)
            if found:
                actions += actions_of(found)
                break
    return actions


@dataclass
class Model:
    """The store as the audit log tells it: replaying the rows must give the real store."""

    addins: dict[str, tuple[str, str]] = field(default_factory=dict)  # key: (name, url)
    rooms: dict[str, str | None] = field(default_factory=dict)  # room: add-in name
    joined: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def of(cls, handle: BotHandle) -> Model:
        engine, pool = service(handle).store, handle.settings.pools.names[0]
        model, page = cls(), 1
        while True:
            result = addins.list_addins(engine, pool=pool, page=page)
            model.addins.update({name_key(n): (n, u) for n, u, _uses in result.items})
            if page >= result.pages:
                break
            page += 1
        for info in addins.list_rooms(engine):
            model.rooms[info.jid] = info.addin
            model.joined[info.jid] = info.joined
        return model

    def replay(self, entry: addins.AuditEntry) -> None:
        key = name_key(entry.addin) if entry.addin else ""
        if entry.action == "register":
            self.addins[key] = (entry.addin or "", entry.detail)
        elif entry.action == "update-url":
            self.addins[key] = (self.addins[key][0], entry.detail)
        elif entry.action == "rename":
            old = entry.detail.removeprefix("was “").removesuffix("”")
            _name, url = self.addins.pop(name_key(old))
            self.addins[key] = (entry.addin or "", url)
            for room, name in self.rooms.items():
                if name is not None and name_key(name) == name_key(old):
                    self.rooms[room] = entry.addin
        elif entry.action == "unregister":
            del self.addins[key]
        elif entry.action in ("attach", "detach"):
            assert entry.room is not None
            self.rooms[entry.room] = entry.addin if entry.action == "attach" else None
        elif entry.action in ("join", "leave", "stop"):
            assert entry.room is not None
            self.joined[entry.room] = entry.action == "join"
        else:
            raise AssertionError(f"an audit row nobody expected: {entry}")

    def comparable(self) -> tuple[object, ...]:
        return (
            dict(self.addins),
            {room: name for room, name in self.rooms.items() if name is not None},
            {room for room, joined in self.joined.items() if joined},
        )


async def test_two_thousand_generated_command_lines(
    scene: Scene, bot: BotHandle, people: People, prosody: Prosody, room: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    for name in M_NAMES:
        await scene.register(name, f"https://{name.split()[1].lower()}.example/")
    alice, mallory = await scene.occupy(room, "alice", "mallory", non_anonymous=True)
    admin = await people("admin")
    rooms = Rooms(room, [room.replace("@", "-2@"), room.replace("@", "-3@")])
    lines = generate(rooms, prosody.muc)
    engine = service(bot).store
    first_new = addins.last_audit_id(engine) + 1
    before = Model.of(bot)
    to = scene.bot_jid
    senders = {"admin": admin, "manager": alice, "stranger": mallory}
    sent = Counter(channel for channel, _line in lines)
    started = time.monotonic()

    for channel, line in lines:
        who, way = channel.split()
        if way == "dm":
            senders[who].send_chat(to, line)
        else:
            senders[who].send_groupchat(room, line)
    for client in (alice, mallory):  # the last word in the room from each
        client.send_groupchat(room, "!addin help zzbarrier")

    inbox: dict[str, list[Message]] = {who: [] for who in senders}

    def direct_replies(who: str) -> list[str]:
        return [str(m["body"]) for m in inbox[who] if m["from"].bare == to]

    def private(who: str) -> list[str]:
        return [str(m["body"]) for m in inbox[who] if from_bot(room, "chat")(m)]

    def finished() -> bool:
        for who, client in senders.items():
            inbox[who] += client.drain()
        return all(
            len(direct_replies(who)) >= sent[f"{who} dm"] for who in senders
        ) and all(any("zzbarrier" in body for body in private(who))
                  for who in ("manager", "stranger"))

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 50
    while not finished():
        counts = {who: len(direct_replies(who)) for who in senders}
        assert loop.time() < deadline, f"replies so far {counts} of {dict(sent)}"
        await asyncio.sleep(0.05)
    app = service(bot).app
    while app.announcer.cursor < addins.last_audit_id(engine):  # every change announced
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    finished()
    took = time.monotonic() - started

    # No crash: the bot answered every direct message exactly once, never with an internal
    # error, logged no error, and still answers at once.
    for who in senders:
        assert len(direct_replies(who)) == sent[f"{who} dm"], who
        everything = direct_replies(who) + private(who)
        assert not [body for body in everything if FAILED in body], who
    problems = [r for r in caplog.records
                if r.levelno >= logging.ERROR and r.name.startswith(("bot", "slixmpp"))]
    assert not problems, [r.getMessage() for r in problems]
    await still_responsive(admin, to, prosody)

    # Every change audited: replaying the audit rows turns the store before into the store
    # after.
    rows = [e for e in reversed(addins.audit(engine, limit=100_000)) if e.id >= first_new]
    model = before
    for entry in rows:
        model.replay(entry)
    assert model.comparable() == Model.of(bot).comparable()

    # Nothing changes without a success reply: each sender's rows are exactly what the bot
    # told that sender it did, in order; the stranger changed nothing.
    by_actor: dict[tuple[str, str], list[str]] = {}
    for entry in rows:
        by_actor.setdefault((entry.actor, entry.via), []).append(entry.action)
    admin_jid, alice_jid = jid(prosody, "admin"), jid(prosody, "alice")
    assert by_actor.pop((admin_jid, "dm"), []) == actions_confirmed(direct_replies("admin"))
    assert by_actor.pop((alice_jid, "dm"), []) == actions_confirmed(direct_replies("manager"))
    in_room = [e for e in rows if (e.actor, e.via) == (alice_jid, "room")]
    by_actor.pop((alice_jid, "room"), None)
    assert all(e.action in ("attach", "detach") and e.room == room for e in in_room)
    assert set(by_actor) <= {("addinbot", "bot")}, by_actor  # the bot's own: a room it left
    assert not [e for e in rows if "mallory" in e.actor]
    # ...and what changed the manager's room was said in it, the last word being the truth.
    said = [str(m["body"]) for m in inbox["stranger"] if from_bot(room, "groupchat")(m)]
    changes = [e for e in rows if e.room == room]
    if changes:
        final = addins.room_info(engine, room)
        assert said, "changes to the room were never said in it"
        assert said[-1] == (attached_sentence(final.addin, final.url or "")
                            if final.addin else "This room no longer has an add-in.")
    else:
        assert not said
    print(
        f"\n{TOTAL_LINES} lines in {took:.1f} s; {len(rows)} changes; sent {dict(sent)}; "
        f"confirmed {Counter(e.action for e in rows)}"
    )
