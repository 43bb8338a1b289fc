"""Spoofing, against a real Prosody: whom the bot believes, and what it never acts on.

Prosody stamps the `from` of everything a client sends, so a forged sender never reaches the
bot — that is what makes a direct message's sender trustworthy. What a client *can* forge is
the inside of a stanza (a carbon copy, a delay stamp, a MUC `<x/>`) and a nickname. Each test
sends its forgery over a real stream, as raw XML where slixmpp would not write it; a witness
on the bot's XMPP edge shows that the forgery did reach the bot, and the test checks that the
bot acted on none of it: no answer but the expected refusal, and the store unchanged.
"""

from __future__ import annotations

import asyncio
import itertools
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
from slixmpp import JID, Message
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from bot import addins
from bot.announce import attached_sentence, welcome_sentence
from bot.config import load_settings
from bot.rooms import NICK_FIXED, SELF
from bot.values import Message as Inbound
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import TestClient, sent_by
from tests.integration.conftest import PASSWORD, XMPP, BotHandle, jid, write_config

pytestmark = pytest.mark.xmpp

NICK = "AddinBot"
NAME, URL = "Stock Ticker", "https://stocks.example.org/panel"
OTHER, OTHER_URL = "Weather", "https://weather.example.org/"
STAMP = "2020-01-01T00:00:00Z"
QUIET_S = 0.5  # long enough for the bot to have answered, had it been going to
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_DELAY = "urn:xmpp:delay"
NS_LEGACY_DELAY = "jabber:x:delay"

People = Callable[[str], Awaitable[TestClient]]
_ids = itertools.count()


# --- what the bot knows, and what it saw ---------------------------------------------------


def service(handle: BotHandle):
    assert handle.service is not None
    return handle.service


@dataclass(frozen=True)
class Snapshot:
    """Everything a command could change: add-ins, rooms, and the audit log's length."""

    addins: tuple[tuple[str, str, int], ...]
    rooms: tuple[tuple[str, str | None, bool], ...]
    audit: int


def snapshot(handle: BotHandle) -> Snapshot:
    engine = service(handle).store
    page = addins.list_addins(engine, pool=handle.settings.pools.names[0])
    rooms = addins.list_rooms(engine)
    return Snapshot(
        page.items, tuple((r.jid, r.addin, r.joined) for r in rooms),
        len(addins.audit(engine, limit=10_000)),
    )


def attached(handle: BotHandle, room: str) -> str | None:
    return addins.room_info(service(handle).store, room).addin


class Witness:
    """What reached the bot's stream (every message stanza), and what its XMPP edge made of
    those it looked at: a value to act on, or None (dropped). slixmpp hands the edge only
    messages with a body; the rest never get as far."""

    def __init__(self, handle: BotHandle, monkeypatch: pytest.MonkeyPatch) -> None:
        edge = service(handle).edge
        self.arrived: list[ET.Element] = []
        self.seen: list[tuple[ET.Element, Inbound | None]] = []
        look = edge.muc.to_message

        def to_message(xml: ET.Element) -> Inbound | None:
            value = look(xml)
            self.seen.append((xml, value))
            return value

        monkeypatch.setattr(edge.muc, "to_message", to_message)
        edge.register_handler(Callback(
            f"witness {id(self)}", StanzaPath("message"),
            lambda stanza: self.arrived.append(stanza.xml),
        ))

    def reached(self, stanza_id: str) -> bool:
        return any(xml.get("id") == stanza_id for xml in self.arrived)

    def by_id(self, stanza_id: str) -> list[tuple[ET.Element, Inbound | None]]:
        return [(xml, value) for xml, value in self.seen if xml.get("id") == stanza_id]

    def delayed(self) -> list[tuple[ET.Element, Inbound | None]]:
        return [(xml, value) for xml, value in self.seen if has_delay(xml)]

    async def until(self, what: str, found: Callable[[], bool], timeout: float = 5.0) -> None:
        await until(found, what, timeout)


def has_delay(xml: ET.Element) -> bool:
    return (
        xml.find(f"{{{NS_DELAY}}}delay") is not None
        or xml.find(f"{{{NS_LEGACY_DELAY}}}x") is not None
    )


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


# --- talking ---------------------------------------------------------------------------------


def new_id() -> str:
    return f"forged-{next(_ids)}"


def send_raw(client: TestClient, stanza: str) -> None:
    """Write a stanza as it stands: the server will still stamp its `from`."""
    client.send_raw(stanza)


def message(to: str, body: str | None, *children: str, kind: str = "chat",
            stanza_id: str | None = None, sender: str | None = None) -> str:
    attrs = f"to={quoteattr(to)} type={quoteattr(kind)} id={quoteattr(stanza_id or new_id())}"
    if sender is not None:
        attrs += f" from={quoteattr(sender)}"
    text = "" if body is None else f"<body>{escape(body)}</body>"
    return f"<message {attrs}>{text}{''.join(children)}</message>"


def inner(sender: str, to: str, body: str, *children: str) -> str:
    """A message as it would stand inside a carbon copy or a forward."""
    return (
        f"<message xmlns='jabber:client' from={quoteattr(sender)} to={quoteattr(to)} "
        f"type='chat'><body>{escape(body)}</body>{''.join(children)}</message>"
    )


async def answered_first(client: TestClient, bot_jid: str) -> None:
    """The bot answers one sender's messages in order: if this comes back first, the bot
    had nothing to say to anything `client` sent before it."""
    reply = await client.ask(bot_jid, "help barrier")
    assert reply.startswith("No command “barrier”"), f"the bot said this first: {reply!r}"


def from_bot(room: str, kind: str, nick: str = NICK) -> Callable[[Message], bool]:
    def match(msg: Message) -> bool:
        return (
            msg["from"].bare == room and msg["from"].resource == nick
            and msg["type"] == kind and bool(msg["body"])
        )

    return match


def anything_from_bot(room: str, nick: str = NICK) -> Callable[[Message], bool]:
    return lambda msg: msg["from"].bare == room and msg["from"].resource == nick


async def said_in_room(client: TestClient, room: str, nick: str = NICK) -> str:
    return str((await client.next_message(5.0, from_bot(room, "groupchat", nick)))["body"])


async def told_privately(client: TestClient, room: str, nick: str = NICK) -> str:
    return str((await client.next_message(5.0, from_bot(room, "chat", nick)))["body"])


async def make_non_anonymous(client: TestClient, room: str) -> None:
    muc = client.plugin["xep_0045"]
    form = await muc.get_room_config(room)
    form.get_fields()["muc#roomconfig_whois"]["value"] = "anyone"
    await muc.set_room_config(room, form)


class Scene:
    """The admin's direct line to the bot, and rooms set up with an owner who made them."""

    def __init__(self, handle: BotHandle, people: People, prosody: Prosody) -> None:
        self.handle = handle
        self.people = people
        self.bot_jid = jid(prosody, "addinbot")
        self.prosody = prosody
        self._admin: TestClient | None = None

    async def admin(self, body: str) -> str:
        if self._admin is None:
            self._admin = await self.people("admin")
        return await self._admin.ask(self.bot_jid, body)

    async def register(self, name: str = NAME, url: str = URL) -> None:
        reply = await self.admin(f'register "{name}" {url}')
        assert reply.startswith(f"Registered “{name}”"), reply

    async def occupy(
        self, room: str, *users: str, non_anonymous: bool = False
    ) -> list[TestClient]:
        """The first user makes the room (and owns it), the others join, then the bot."""
        clients = []
        for user in users:
            client = await self.people(user)
            await client.join_room(room, user)
            if non_anonymous and not clients:
                await make_non_anonymous(client, room)
            clients.append(client)
        reply = await self.admin(f"join {room}")
        assert reply.startswith(f"Joining {room}"), reply
        await self.handle.in_room(room)
        return clients


@pytest.fixture
def scene(bot: BotHandle, people: People, prosody: Prosody) -> Scene:
    return Scene(bot, people, prosody)


# --- 1. a private message through a room proves only a nickname ---------------------------


async def test_a_private_message_through_a_room_never_proves_an_admin(
    scene: Scene, bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    await scene.register()
    (alice,) = await scene.occupy(room, "alice", non_anonymous=True)
    admin = await people("admin")
    await admin.join_room(room, "admin")
    # The room shows the bot the admin's real JID: the bot could map the nickname to it.
    await until(lambda: service(bot).app.rooms.occupant(room, "admin") is not None, "admin")
    assert service(bot).app.rooms.occupant(room, "admin").jid == jid(prosody, "admin")
    before = snapshot(bot)
    elsewhere = room.replace("@", "-other@")
    direct_only = "a private message from a room proves only a nickname"
    asks = [
        (f"register Evil {URL}", direct_only),
        (f"!addin unregister \"{NAME}\" force", direct_only),
        (f"join {elsewhere}", direct_only),
        ("audit", direct_only),
        (f'attach "{NAME}"', f"Only the owners and admins of {room} may do that."),
        ("detach", f"Only the owners and admins of {room} may do that."),
    ]

    async def refused_through_the_room(client: TestClient) -> None:
        for body, answer in asks:
            client.send_chat(f"{room}/{NICK}", body)
            assert answer in await told_privately(client, room), body

    # The real admin, through the room: still only a nickname.
    await refused_through_the_room(admin)
    await admin.leave_room_wait(room, "admin")
    # Someone else under the admin's nickname, or under the admin's address as a nickname.
    mallory = await people("mallory")
    for nick in ("admin", jid(prosody, "admin")):
        await mallory.join_room(room, nick)
        await refused_through_the_room(mallory)
        await mallory.leave_room_wait(room, nick)

    assert snapshot(bot) == before
    await alice.expect_no_message(0, from_bot(room, "groupchat"))
    # By direct message the same admin is heard at once.
    assert (await scene.admin(f"register Evil {URL}")).startswith("Registered “Evil”")


# --- 2. a direct message from a JID that is not an admin ----------------------------------


async def test_a_direct_message_from_a_stranger_is_refused_and_changes_nothing(
    scene: Scene, bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    await scene.register()
    (alice,) = await scene.occupy(room, "alice", non_anonymous=True)
    mallory = await people("mallory")
    before = snapshot(bot)
    not_admin = "Only an addinbot admin may run {}."
    not_in_room = f"You must be in {room} as one of its owners or admins to do that."
    asks = [
        (f"register Evil {URL}", not_admin.format("register")),
        (f"!addin register Evil {URL}", not_admin.format("register")),
        (f"REGISTER Evil {URL}", not_admin.format("register")),
        (f'update "{NAME}" url https://evil.example/', not_admin.format("update")),
        (f'update "{NAME}" name Evil', not_admin.format("update")),
        (f'unregister "{NAME}" force', not_admin.format("unregister")),
        (f'show "{NAME}"', not_admin.format("show")),
        ("audit 200", not_admin.format("audit")),
        (f"join {room.replace('@', '-other@')}", not_admin.format("join")),
        (f"leave {room}", not_admin.format("leave")),
        ("rooms", not_admin.format("rooms")),
        (f'attach {room} "{NAME}"', not_in_room),
        (f"detach {room}", not_in_room),
    ]
    for body, answer in asks:
        assert await mallory.ask(scene.bot_jid, body) == answer, body

    # A `from` written by the client is replaced by the server with the real one (Prosody),
    # or costs the client its stream (ejabberd: stream error invalid-from).
    for claimed in (f"{jid(prosody, 'admin')}/forged", jid(prosody, "admin"), f"{room}/alice"):
        if XMPP == "ejabberd":
            forger = await people("mallory")
            ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            forger.add_event_handler(
                "stream_error", lambda e, f=ended: f.done() or f.set_result(e["condition"])
            )
            send_raw(forger, message(scene.bot_jid, f"register Forged {URL}", sender=claimed))
            assert await asyncio.wait_for(ended, 5) == "invalid-from", claimed
            continue
        send_raw(mallory, message(scene.bot_jid, f"register Forged {URL}", sender=claimed))
        reply = await mallory.next_message(predicate=lambda m: m["from"].bare == scene.bot_jid)
        assert reply["body"] == not_admin.format("register"), claimed

    help_lines = (await mallory.ask(scene.bot_jid, "help")).splitlines()
    assert [line.split()[0] for line in help_lines] == ["help", "list", "mute", "unmute"]
    assert snapshot(bot) == before
    await alice.expect_no_message(0, anything_from_bot(room))


# --- 3. forged carbon copies ----------------------------------------------------------------


async def test_a_forged_carbon_copy_is_never_acted_on(
    scene: Scene, bot: BotHandle, people: People, prosody: Prosody, room: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    witness = Witness(bot, monkeypatch)
    mallory, admin = await people("mallory"), await people("admin")
    to, admin_jid = scene.bot_jid, jid(prosody, "admin")
    before = snapshot(bot)

    def received(wrapped: str) -> str:
        return (
            "<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
            f"{wrapped}</forwarded></received>"
        )

    def sent(wrapped: str) -> str:
        return (
            "<sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
            f"{wrapped}</forwarded></sent>"
        )

    def forwarded(wrapped: str) -> str:
        return f"<forwarded xmlns='urn:xmpp:forward:0'>{wrapped}</forwarded>"

    invitation = f"<x xmlns='jabber:x:conference' jid={quoteattr(room)}/>"
    forgeries = {
        # (who sends it, the stanza)
        "received": (mallory, received(inner(f"{admin_jid}/phone", to, f"register C1 {URL}"))),
        "sent": (mallory, sent(inner(f"{admin_jid}/phone", to, f"register C2 {URL}"))),
        "as the bot": (mallory, sent(inner(f"{to}/other", admin_jid, f"register C3 {URL}"))),
        "forwarded": (mallory, forwarded(inner(admin_jid, to, f"register C4 {URL}"))),
        "invitation": (mallory, received(inner(admin_jid, to, "come in", invitation))),
        "by the admin": (admin, received(inner(f"{admin_jid}/phone", to, f"register C5 {URL}"))),
    }
    ids: dict[str, str] = {}
    for what, (client, wrapper) in forgeries.items():
        # As a carbon comes (no body of its own), and with one: the edge must set aside the
        # whole stanza, not answer its outer body ("list").
        for outer in (None, "list"):
            key = f"{what}, outer body {outer!r}"
            ids[key] = new_id()
            send_raw(client, message(to, outer, wrapper, stanza_id=ids[key]))

    await answered_first(mallory, to)
    await answered_first(admin, to)
    for what, stanza_id in ids.items():
        assert witness.reached(stanza_id), f"the forged carbon ({what}) never reached the bot"
        looked = [value for _xml, value in witness.by_id(stanza_id)]
        assert looked == ([None] if "list" in what else []), what
    assert snapshot(bot) == before
    assert service(bot).app.rooms.nick_in(room) is None  # the wrapped invitation: not taken


# --- 4. delay stamps: direct, in the room, in history at join and after a reconnect -------


async def test_a_delay_stamped_direct_message_is_not_executed(
    scene: Scene, bot: BotHandle, people: People, prosody: Prosody, room: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    witness = Witness(bot, monkeypatch)
    admin = await people("admin")
    before = snapshot(bot)
    stamps = [
        f"<delay xmlns='{NS_DELAY}' from='{prosody.domain}' stamp='{STAMP}'/>",  # offline store
        f"<delay xmlns='{NS_DELAY}' from='{room}' stamp='{STAMP}'/>",  # a room's history
        f"<delay xmlns='{NS_DELAY}' stamp='{STAMP}'/>",
        f"<x xmlns='{NS_LEGACY_DELAY}' from='{prosody.domain}' stamp='20200101T00:00:00'/>",
    ]
    ids = [new_id() for _ in stamps]
    for number, (stamp, stanza_id) in enumerate(zip(stamps, ids, strict=True)):
        body = f"register Delayed{number} https://delayed{number}.example/"
        send_raw(admin, message(scene.bot_jid, body, stamp, stanza_id=stanza_id))
    await answered_first(admin, scene.bot_jid)
    for stanza_id in ids:
        seen = witness.by_id(stanza_id)
        ((xml, value),) = seen
        assert has_delay(xml), "the stamp reached the bot"
        assert value is None
    assert snapshot(bot) == before


async def test_a_delay_stamp_in_the_room_is_never_acted_on(
    scene: Scene, bot: BotHandle, prosody: Prosody, room: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await scene.register()
    alice, bob = await scene.occupy(room, "alice", "bob")
    alice.send_groupchat(room, f'!addin attach "{NAME}"')
    assert await said_in_room(bob, room) == attached_sentence(NAME, URL)
    witness = Witness(bot, monkeypatch)
    before = snapshot(bot)

    # Stamps the room lets through: the bot sees them and does nothing.
    passed = [
        f"<delay xmlns='{NS_DELAY}' from='{prosody.domain}' stamp='{STAMP}'/>",
        f"<delay xmlns='{NS_DELAY}' from='{room}/alice' stamp='{STAMP}'/>",
        f"<delay xmlns='{NS_DELAY}' stamp='{STAMP}'/>",
        f"<x xmlns='{NS_LEGACY_DELAY}' from='{prosody.domain}' stamp='20200101T00:00:00'/>",
    ]
    ids = [new_id() for _ in passed]
    for stamp, stanza_id in zip(passed, ids, strict=True):
        send_raw(alice, message(room, "!addin detach", stamp, kind="groupchat",
                                stanza_id=stanza_id))
    for _ in passed:  # the room passed them on, stamps and all
        seen_by_bob = await bob.next_message(predicate=lambda m: m["body"] == "!addin detach")
        assert seen_by_bob["delay"]["stamp"] is not None or seen_by_bob.xml.find(
            f"{{{NS_LEGACY_DELAY}}}x") is not None
    await witness.until("the stamped messages", lambda: all(witness.by_id(i) for i in ids))
    for stanza_id in ids:
        ((xml, value),) = witness.by_id(stanza_id)
        assert has_delay(xml)
        assert value is None

    # A stamp claiming to be the room's own: Prosody strips it from a live message, so what
    # reaches the bot is live, unstamped — and answered like any other. ejabberd passes it
    # on: the bot sees a stamp from the room, as on history, and does nothing.
    claimed = new_id()
    own_stamp = f"<delay xmlns='{NS_DELAY}' from='{room}' stamp='{STAMP}'/>"
    send_raw(alice, message(room, "!addin", own_stamp, kind="groupchat", stanza_id=claimed))
    if XMPP == "ejabberd":
        await witness.until("the room-stamped message", lambda: bool(witness.by_id(claimed)))
        ((xml, value),) = witness.by_id(claimed)
        assert has_delay(xml)
        assert value is None
    else:
        assert await said_in_room(bob, room) == welcome_sentence(NAME, URL)
        ((xml, value),) = witness.by_id(claimed)
        assert not has_delay(xml)
        assert value is not None

    await bob.expect_no_message(QUIET_S, anything_from_bot(room))
    assert snapshot(bot) == before
    assert attached(bot, room) == NAME


def join_with_history(handle: BotHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the bot ask for the room's history when it joins (it asks for none): whatever
    the room replays must still not be acted on."""
    edge = service(handle).edge

    def join(room: str, nick: str) -> None:
        edge.muc.join_stanza(room, nick, maxstanzas=20).send()

    monkeypatch.setattr(edge, "join", join)


async def test_commands_in_the_room_history_are_not_executed_at_join(
    scene: Scene, bot: BotHandle, people: People, room: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await scene.register()
    alice = await people("alice")
    await alice.join_room(room, "alice")
    alice.send_groupchat(room, f'!addin attach "{NAME}"')  # before the bot is there
    alice.send_groupchat(room, "!addin")
    await alice.next_message(predicate=lambda m: m["body"] == "!addin")  # the room has them
    witness = Witness(bot, monkeypatch)
    join_with_history(bot, monkeypatch)
    before = snapshot(bot)

    assert (await scene.admin(f"join {room}")).startswith("Joining")
    await bot.in_room(room)
    await witness.until("the room's history", lambda: len(witness.delayed()) >= 2)
    assert [value for _xml, value in witness.delayed()] == [None, None]
    await alice.expect_no_message(QUIET_S, anything_from_bot(room))
    assert attached(bot, room) is None
    assert snapshot(bot).addins == before.addins


async def test_commands_in_the_room_history_are_not_executed_after_a_reconnect(
    scene: Scene, bot: BotHandle, room: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await scene.register()
    await scene.register(OTHER, OTHER_URL)
    alice, bob = await scene.occupy(room, "alice", "bob")
    alice.send_groupchat(room, f'!addin attach "{NAME}"')
    assert await said_in_room(bob, room) == attached_sentence(NAME, URL)
    witness = Witness(bot, monkeypatch)
    join_with_history(bot, monkeypatch)
    before = snapshot(bot)
    bot_presence: asyncio.Queue[str] = asyncio.Queue()

    def watch(presence: StanzaBase) -> None:
        if presence["from"] == JID(f"{room}/{NICK}"):
            bot_presence.put_nowait(presence["type"])

    alice.add_event_handler("groupchat_presence", watch)
    edge = service(bot).edge
    edge.drop_connection()
    assert await asyncio.wait_for(bot_presence.get(), 10) == "unavailable"

    # While the bot is away, its room fills with commands.
    alice.send_groupchat(room, "!addin detach")
    alice.send_groupchat(room, f"!addin attach {OTHER}")
    for _ in range(2):
        await bob.next_message(predicate=lambda m: m["from"].resource == "alice")

    assert await asyncio.wait_for(bot_presence.get(), 15) == "available"
    await bot.in_room(room)
    await witness.until("the room's history", lambda: len(witness.delayed()) >= 2, 10)
    replayed = [xml.findtext("{jabber:client}body") for xml, _value in witness.delayed()]
    assert "!addin detach" in replayed
    assert f"!addin attach {OTHER}" in replayed
    assert all(value is None for _xml, value in witness.delayed())
    await bob.expect_no_message(QUIET_S, anything_from_bot(room))
    assert attached(bot, room) == NAME
    assert snapshot(bot) == before


# --- 5. nicknames: a departed manager's, and look-alikes -----------------------------------

LOOK_ALIKES = [
    "alice ",  # trailing space
    " alice",
    "al\u200bice",  # zero-width space: the server's nickname rules erase it
    "alice\u2060",  # word joiner: the same
    "alice\u00ad",  # soft hyphen: the same
    "ａｌｉｃｅ",  # full width: folded to "alice"
    "аlice",  # Cyrillic а
    "ALICE",
    "alicé",
]


async def _presence_to(client: TestClient, room: str, nick: str, kind: str | None) -> str | None:
    """Send presence to `room/nick` (written as it stands) and wait for the room's answer
    about ourselves: the nickname it gave (or took back), or None if it refused."""
    outcome: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
    stanza_id = new_id()

    def on_presence(presence: StanzaBase) -> None:
        if presence["from"].bare != room or outcome.done():
            return
        if presence["type"] == "error" and presence["id"] == stanza_id:
            outcome.set_result(None)
        elif 110 in presence["muc"]["status_codes"]:
            outcome.set_result(presence["from"].resource)

    name = f"presence {stanza_id}"
    client.register_handler(Callback(name, StanzaPath("presence"), on_presence))
    try:
        extra = f" type='{kind}'" if kind else ""
        muc = "" if kind else f"<x xmlns='{NS_MUC}'><history maxstanzas='0'/></x>"
        send_raw(client, f"<presence to={quoteattr(f'{room}/{nick}')} id='{stanza_id}'{extra}>"
                         f"{muc}</presence>")
        return await asyncio.wait_for(outcome, 5)
    finally:
        client.remove_handler(name)


async def join_raw(client: TestClient, room: str, nick: str) -> str | None:
    """Join as `nick`: the nickname the room gave, or None if it refused."""
    return await _presence_to(client, room, nick, None)


async def leave_raw(client: TestClient, room: str, nick: str) -> None:
    assert await _presence_to(client, room, nick, "unavailable") == nick


async def test_a_departed_managers_nickname_or_a_look_alike_proves_nothing(
    scene: Scene, bot: BotHandle, people: People, room: str
) -> None:
    await scene.register()
    alice, bob = await scene.occupy(room, "alice", "bob")
    rooms = service(bot).app.rooms
    assert rooms.occupant(room, "alice").affiliation == "owner"
    before = snapshot(bot)
    refusal = f"Only the owners and admins of {room} may do that."
    mallory = await people("mallory")

    async def refused(nick: str) -> None:
        mallory.send_groupchat(room, f'!addin attach "{NAME}"')
        assert await told_privately(mallory, room) == refusal, nick
        mallory.send_chat(f"{room}/{NICK}", f'attach "{NAME}"')
        assert await told_privately(mallory, room) == refusal, nick

    # The manager's very nickname, once the manager has gone.
    await alice.leave_room_wait(room, "alice")
    assert await join_raw(mallory, room, "alice") == "alice"
    await refused("alice")
    assert rooms.occupant(room, "alice").affiliation == "none"
    await leave_raw(mallory, room, "alice")

    # Look-alikes, with the manager present: the server folds some into "alice" and refuses
    # them (a conflict); the rest are other nicknames, with no affiliation.
    await alice.join_room(room, "alice")
    given: dict[str, str | None] = {}
    for nick in LOOK_ALIKES:
        given[nick] = got = await join_raw(mallory, room, nick)
        if got is None:
            continue
        assert got != "alice"
        await until(lambda got=got: rooms.occupant(room, got) is not None, repr(got))
        assert rooms.occupant(room, got).affiliation == "none"
        await refused(nick)
        await leave_raw(mallory, room, got)
    assert given == {
        "alice ": "alice ", " alice": " alice", "al\u200bice": None, "alice\u2060": None,
        "alice\u00ad": None, "ａｌｉｃｅ": None, "аlice": "аlice", "ALICE": "ALICE",
        "alicé": "alicé",
    }
    assert rooms.occupant(room, "alice").affiliation == "owner"
    assert snapshot(bot) == before
    await bob.expect_no_message(QUIET_S, anything_from_bot(room))


# --- 6. a manager demoted while present ---------------------------------------------------


async def test_a_manager_demoted_while_present_is_refused_at_once(
    scene: Scene, bot: BotHandle, prosody: Prosody, room: str
) -> None:
    await scene.register()
    await scene.register(OTHER, OTHER_URL)
    alice, carol = await scene.occupy(room, "alice", "carol", non_anonymous=True)
    muc = alice.plugin["xep_0045"]
    await muc.set_affiliation(room, "admin", jid=jid(prosody, "carol"))
    carol.send_groupchat(room, f'!addin attach "{NAME}"')
    assert await said_in_room(alice, room) == attached_sentence(NAME, URL)

    await muc.set_affiliation(room, "member", jid=jid(prosody, "carol"))
    before = snapshot(bot)
    refusal = f"Only the owners and admins of {room} may do that."
    carol.send_groupchat(room, f"!addin attach {OTHER}")
    assert await told_privately(carol, room) == refusal
    carol.send_groupchat(room, "!addin detach")
    assert await told_privately(carol, room) == refusal
    carol.send_chat(f"{room}/{NICK}", f"attach {OTHER}")
    assert await told_privately(carol, room) == refusal
    assert await carol.ask(scene.bot_jid, f"attach {room} {OTHER}") == refusal
    assert await carol.ask(scene.bot_jid, f"detach {room}") == refusal

    await alice.expect_no_message(QUIET_S, anything_from_bot(room))
    assert snapshot(bot) == before
    assert attached(bot, room) == NAME


# --- 7. the bot's own words, under a nickname the server gave it (status 210) -------------

ENFORCED_NICKS = """
Component "conference.localhost" "muc" {
    enforce_registered_nickname = true;
}
"""


@pytest.mark.prosody_only(
    reason="the server-assigned nickname (status 210) comes from Prosody's "
    "enforce_registered_nickname option, which ejabberd does not have"
)
async def test_under_a_nickname_the_server_assigned_the_bot_ignores_its_own_words(
    tmp_path: Path, room: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prosody 0.12 assigns a nickname (status 210) when the room has one registered for
    the account and enforces it: the bot, asking for "AddinBot", becomes "Helper"."""
    server = Prosody(tmp_path / "prosody", extra_config=ENFORCED_NICKS)
    server.start()
    clients: list[TestClient] = []
    handle: BotHandle | None = None
    try:
        for user in ("addinbot", "admin", "alice", "mallory"):
            server.register(user, PASSWORD)
        handle = BotHandle(load_settings(write_config(server, tmp_path)))
        await handle.start()
        for user in ("admin", "alice", "mallory"):
            client = TestClient(jid(server, user), PASSWORD)
            await client.start(server.host, server.port)
            clients.append(client)
        admin, alice, mallory = clients
        bot_jid = jid(server, "addinbot")
        assert (await admin.ask(bot_jid, f'register "{NAME}" {URL}')).startswith("Registered")

        await alice.join_room(room, "alice")
        await alice.plugin["xep_0045"].set_affiliation(room, "member", jid=bot_jid, nick="Helper")
        witness = Witness(handle, monkeypatch)
        edge = service(handle).edge
        own_codes: list[frozenset[int]] = []
        read_presence = edge.muc.to_presence

        def to_presence(xml: ET.Element):
            presence = read_presence(xml)
            if presence is not None and SELF in presence.codes:
                own_codes.append(presence.codes)
            return presence

        monkeypatch.setattr(edge.muc, "to_presence", to_presence)
        assert (await admin.ask(bot_jid, f"join {room}")).startswith("Joining")
        await handle.in_room(room)
        assert service(handle).app.rooms.nick_in(room) == "Helper"
        assert any(NICK_FIXED in codes for codes in own_codes), own_codes

        alice.send_groupchat(room, f'!addin attach "{NAME}"')
        assert await said_in_room(alice, room, "Helper") == attached_sentence(NAME, URL)

        # Its own words, reflected by the room from its new nickname: never obeyed.
        for words in ("!addin detach", "Helper: detach", "!addin"):
            edge.send_room(room, words)
            assert await said_in_room(alice, room, "Helper") == words
        await until(lambda: len([v for x, v in witness.seen if "Helper" in x.get("from", "")])
                    >= 4, "the reflections")
        own = [v for x, v in witness.seen if x.get("from") == f"{room}/Helper"]
        assert own
        assert all(value is None for value in own)

        # The nickname it asked for is now anyone's: it earns nothing, and it is not the bot.
        assert await join_raw(mallory, room, NICK) == NICK
        # She joined a room with an add-in: the bot welcomes her privately, in its own time.
        # Each private message is waited for by what it says, so neither is taken for the
        # other whichever comes first.
        helper = f"{room}/Helper"
        await mallory.wait_for(sent_by(helper, "chat", welcome_sentence(NAME, URL)))
        mallory.send_groupchat(room, "!addin detach")
        refusal = f"Only the owners and admins of {room} may do that."
        await mallory.wait_for(sent_by(helper, "chat", refusal))
        mallory.send_groupchat(room, f"{NICK}: detach")  # not the bot's name any more
        mallory.send_groupchat(room, "Helper: show")
        # mallory's commands are answered in order: nothing before the answer to the second
        # means nothing was made of the first.
        shown = sent_by(helper, "groupchat", welcome_sentence(NAME, URL))
        for client in (mallory, alice):
            await client.nothing_before(shown, anything_from_bot(room, "Helper"))
        await alice.expect_no_message(QUIET_S, anything_from_bot(room, "Helper"))
        assert attached(handle, room) == NAME
    finally:
        for client in clients:
            await client.stop()
        if handle is not None:
            await handle.stop()
        server.stop()


# --- 8. a semi-anonymous room where the bot is not a moderator ----------------------------


async def test_a_direct_attach_fails_closed_where_the_bot_cannot_see_real_jids(
    scene: Scene, bot: BotHandle, people: People, room: str
) -> None:
    await scene.register()
    alice, bob = await scene.occupy(room, "alice", "bob")
    assert not service(bot).app.rooms.rooms[room].shows_jids
    before = snapshot(bot)
    mallory = await people("mallory")
    for client in (alice, mallory):  # the owner and a stranger get the same answer
        for body in (f'attach {room} "{NAME}"', f"detach {room}"):
            reply = await client.ask(scene.bot_jid, body)
            assert reply == (
                f"{room} does not show the bot its occupants' real addresses, so it cannot "
                f"tell that you manage it. Run the command in the room, or ask its owner to "
                f"make the room non-anonymous or give the bot the moderator role."
            )
    await bob.expect_no_message(QUIET_S, anything_from_bot(room))
    assert snapshot(bot) == before
    # What the refusal advises works: in the room, the room vouches for the owner.
    alice.send_groupchat(room, f'!addin attach "{NAME}"')
    assert await said_in_room(bob, room) == attached_sentence(NAME, URL)


# --- 9. a presence that only looks like an error -------------------------------------------


@pytest.mark.prosody_only(
    reason="ejabberd refuses a <show> outside RFC 6121's values: the room never passes "
    "<show>error</show> on, so the bot cannot meet it"
)
async def test_an_occupants_presence_showing_error_does_not_put_the_bot_out_of_the_room(
    scene: Scene, bot: BotHandle, room: str
) -> None:
    """An error presence from a room is how it refuses the bot. `<show>error</show>` is no
    such thing: the room passes it on like any occupant's presence, and the bot, taking
    room presences straight from its stream (bot/xmpp/client.py), must not read it as
    one. It stays, and answers."""
    await scene.register()
    alice, bob = await scene.occupy(room, "alice", "bob")
    alice.send_groupchat(room, f'!addin attach "{NAME}"')
    assert await said_in_room(bob, room) == attached_sentence(NAME, URL)
    bot_presence: asyncio.Queue[str] = asyncio.Queue()
    shown: asyncio.Queue[str | None] = asyncio.Queue()

    def watch(presence: StanzaBase) -> None:
        if presence["from"] == JID(f"{room}/{NICK}"):
            bot_presence.put_nowait(presence.xml.get("type", "available"))
        elif presence["from"] == JID(f"{room}/alice"):
            shown.put_nowait(presence.xml.findtext("{jabber:client}show"))

    bob.add_event_handler("groupchat_presence", watch)
    send_raw(alice, f"<presence to={quoteattr(f'{room}/alice')}><show>error</show></presence>")
    assert await asyncio.wait_for(shown.get(), 5) == "error"  # the room passed it on

    # The room sent the bot alice's presence before bob's command: once the answer is
    # here, a leave or rejoin it caused would have reached bob before it.
    bob.send_groupchat(room, "!addin")
    assert NAME in await said_in_room(bob, room)
    assert bot_presence.empty(), "the bot left or rejoined the room"
    assert service(bot).app.rooms.is_live(room)
