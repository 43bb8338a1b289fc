"""The Control Panel: ad-hoc commands (XEP-0050) with data forms (XEP-0004), run by real
slixmpp clients against the bot on Prosody; and the bot's identity (disco, XEP-0092)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from slixmpp import JID, Message
from slixmpp.exceptions import IqError

from bot import __version__, addins
from bot.announce import attached_sentence
from bot.values import Actor
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import TestClient
from tests.integration.conftest import BotHandle, jid

pytestmark = pytest.mark.xmpp

NS_COMMANDS = "http://jabber.org/protocol/commands"
NAME = "Stock Ticker"
URL = "https://stocks.example.org/panel"
NEW_URL = "https://stocks.example.org/v2"
ADMIN_NODES = sorted([
    "register", "update", "unregister", "list", "show", "audit", "join", "leave", "attach",
    "detach", "rooms", "managers",
])

People = Callable[[str], Awaitable[TestClient]]


# --- helpers -------------------------------------------------------------------------------


def bot_jid(handle: BotHandle) -> JID:
    """The bot's full JID: ad-hoc commands go to a resource (clients see it in presence)."""
    assert handle.service is not None
    return JID(handle.service.edge.boundjid.full)


async def panel_user(people: People, user: str) -> TestClient:
    client = await people(user)
    client.register_plugin("xep_0050")  # also loads xep_0004, for forms
    client.register_plugin("xep_0092")
    return client


async def execute(client: TestClient, to: JID, node: str) -> Any:
    """The first step of a command: the bot's form (or its result, if it needs none)."""
    return await client.plugin["xep_0050"].send_command(to, node, timeout=10)


async def submit(
    client: TestClient, to: JID, first: Any, values: dict[str, str], action: str = "complete"
) -> Any:
    """Fill in and submit the form `first` carried."""
    form = client.plugin["xep_0004"].make_form("submit")
    for var, value in values.items():
        form.add_field(var=var, value=value)
    return await client.plugin["xep_0050"].send_command(
        to, first["command"]["node"], action=action, payload=form,
        sessionid=first["command"]["sessionid"], timeout=10,
    )


async def run_form(
    client: TestClient, to: JID, node: str, values: dict[str, str]
) -> tuple[Any, Any]:
    """A whole flow: execute, get a form, submit it; returns (form step, result)."""
    first = await execute(client, to, node)
    assert first["command"]["status"] == "executing", first
    assert first["command"]["actions"] == {"complete"}
    return first, await submit(client, to, first, values)


def notes(result: Any) -> list[tuple[str, str]]:
    return list(result["command"]["notes"])


def fields_of(step: Any) -> dict[str, Any]:
    return dict(step["command"]["form"].get_fields())


def audit_rows(handle: BotHandle) -> list[addins.AuditEntry]:
    assert handle.service is not None
    return addins.audit(handle.service.store, limit=1000)


async def offered(client: TestClient, to: JID) -> list[str]:
    items = await client.plugin["xep_0050"].get_commands(to, timeout=10)
    return sorted(node for _jid, node, _name in items["disco_items"]["items"])


async def make_non_anonymous(client: TestClient, room: str) -> None:
    muc = client.plugin["xep_0045"]
    form = await muc.get_room_config(room)
    form.get_fields()["muc#roomconfig_whois"]["value"] = "anyone"
    await muc.set_room_config(room, form)


async def admin_joins_bot(
    admin: TestClient, prosody: Prosody, handle: BotHandle, room: str
) -> None:
    reply = await admin.ask(jid(prosody, "addinbot"), f"join {room}")
    assert reply.startswith("Joining"), reply
    await handle.in_room(room)


def occupant_of(handle: BotHandle, room: str, nick: str) -> Any:
    assert handle.service is not None
    return handle.service.app.rooms.occupant(room, nick)


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def said_in(room: str) -> Callable[[Message], bool]:
    return lambda m: m["from"].bare == room and m["type"] == "groupchat" and bool(m["body"])


# --- 4: identity ---------------------------------------------------------------------------


async def test_the_bot_says_what_it_is_and_its_version(bot: BotHandle, people: People) -> None:
    client = await panel_user(people, "mallory")
    to = bot_jid(bot)
    info = (await client.plugin["xep_0030"].get_info(jid=to, timeout=10))["disco_info"]
    assert ("client", "bot", None, "addinbot") in info["identities"]
    for feature in (NS_COMMANDS, "urn:xmpp:ping", "jabber:iq:version"):
        assert feature in info["features"]
    version = (await client.plugin["xep_0092"].get_version(to, timeout=10))["software_version"]
    assert (version["name"], version["version"]) == ("addinbot", __version__)
    assert not version["os"]  # the operating system is nobody's business


async def test_the_forms_open_at_a_fixed_address(bot: BotHandle, people: People) -> None:
    """The bot's resource is `xmpp.resource` (default "addinbot"), not a random one: a
    client can be told once where the Control Panel is (addinbot@host/addinbot)."""
    admin = await panel_user(people, "admin")
    fixed = JID(f"{bot.settings.xmpp.jid}/addinbot")
    assert await offered(admin, fixed) == ADMIN_NODES
    result = await execute(admin, fixed, "list")  # needs no form: its answer at once
    assert result["command"]["status"] == "completed"
    assert notes(result) == [("info", "No add-ins are registered in conference.localhost.")]


# --- 1: discovery, filtered per requester --------------------------------------------------


async def test_the_command_list_is_filtered_per_requester(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    to = bot_jid(bot)
    admin = await panel_user(people, "admin")
    assert await offered(admin, to) == ADMIN_NODES
    info = await admin.plugin["xep_0030"].get_info(jid=to, node="register", timeout=10)
    assert ("automation", "command-node", None, "Register an add-in") in (
        info["disco_info"]["identities"]
    )

    # A room manager is offered attach and detach once the bot sees them manage a room;
    # list is anyone's, in chat as here.
    alice = await panel_user(people, "alice")
    assert await offered(alice, to) == ["list"]
    await alice.join_room(room, "alice")
    await make_non_anonymous(alice, room)
    await admin_joins_bot(admin, prosody, bot, room)
    assert await offered(alice, to) == ["attach", "detach", "list", "managers"]

    mallory = await panel_user(people, "mallory")
    assert await offered(mallory, to) == ["list"]
    with pytest.raises(IqError) as refused:
        await mallory.plugin["xep_0030"].get_info(jid=to, node="register", timeout=10)
    assert refused.value.condition == "item-not-found"


# --- 1: every operation through its form ---------------------------------------------------


async def test_an_admin_runs_every_operation_through_forms(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    to = bot_jid(bot)
    admin = await panel_user(people, "admin")
    bob = await people("bob")
    await bob.join_room(room, "bob")

    first, done = await run_form(admin, to, "register", {"name": NAME, "url": URL})
    assert {"name", "url"} <= set(fields_of(first))
    assert fields_of(first)["url"]["required"]
    assert done["command"]["status"] == "completed"
    assert notes(done) == [("info", f"Registered “{NAME}” in {prosody.muc}: {URL}")]

    listed = await execute(admin, to, "list")  # one pool: nothing to ask, the table at once
    assert listed["command"]["status"] == "completed"
    table = listed["command"]["form"]
    assert table["type"] == "result"
    assert [dict(row) for row in table["items"]] == [
        {"name": NAME, "url": URL, "rooms": "0"}
    ]
    # The same rows as text, a line a cell, for clients that show no table (profanity,
    # poezio); the note also as the title, which they show.
    text = table.get_fields()["text"]
    assert text["type"] == "text-multi"
    assert text["value"] == [f"Name: {NAME}", f"URL: {URL}", "Rooms using it: 0"]
    assert table["title"] == notes(listed)[0][1] == f"Add-ins in {prosody.muc}: 1."

    _, done = await run_form(admin, to, "join", {"room": room})
    assert notes(done) == [("info", f"Joining {room}; the bot will rejoin it after restarts.")]
    await bot.in_room(room)

    first, done = await run_form(admin, to, "attach", {"room": room, "name": NAME})
    name_field = fields_of(first)["name"]
    assert name_field["type"] == "list-single"  # the registered add-ins, to choose from
    assert [o["value"] for o in name_field["options"]] == [NAME]
    assert notes(done) == [("info", f"{room} now has the add-in “{NAME}”: {URL}")]
    told = await bob.next_message(10, said_in(room))
    assert told["body"] == attached_sentence(NAME, URL)  # announced as from chat

    _, done = await run_form(
        admin, to, "update", {"name": NAME, "url": NEW_URL, "new_name": "Ticker"}
    )
    assert notes(done) == [(
        "info",
        f"Renamed “{NAME}” to “Ticker”.\n"
        f"“Ticker” now points to {NEW_URL} — the 1 room using it is told",
    )]
    told = await bob.next_message(10, said_in(room))
    assert NEW_URL in told["body"]

    _, done = await run_form(admin, to, "detach", {"room": room})
    assert notes(done) == [("info", f"{room} no longer has the add-in “Ticker”.")]

    _, done = await run_form(admin, to, "unregister", {"name": "Ticker", "force": "0"})
    assert notes(done) == [("info", "Unregistered “Ticker”.")]

    first, done = await run_form(admin, to, "leave", {"room": room})
    assert [o["value"] for o in fields_of(first)["room"]["options"]] == [room]
    assert notes(done) == [("info", f"Leaving {room}.")]

    rows = [(e.action, e.actor, e.via) for e in reversed(audit_rows(bot))]
    who = jid(prosody, "admin")
    assert rows == [
        (action, who, "adhoc")
        for action in ("register", "join", "attach", "rename", "update-url", "detach",
                       "unregister", "leave")
    ]


async def test_an_admin_reads_an_add_in_the_audit_log_and_the_rooms_through_forms(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    """show, audit and rooms as forms: the chat answer's lines as text (which profanity and
    poezio show), and audit and rooms as a table too."""
    to, direct = bot_jid(bot), jid(prosody, "addinbot")
    admin = await panel_user(people, "admin")
    assert (await admin.ask(direct, f'register "{NAME}" {URL}')).startswith("Registered")
    assert (await admin.ask(direct, f'attach {room} "{NAME}"')).startswith(room)

    first, shown = await run_form(admin, to, "show", {"name": NAME})
    assert [o["value"] for o in fields_of(first)["name"]["options"]] == [NAME]
    assert shown["command"]["status"] == "completed"
    assert notes(shown) == [("info", f"“{NAME}” in {prosody.muc}.")]
    details = fields_of(shown)["text"]
    assert (details["type"], details["label"]) == ("text-multi", "Add-in")
    assert details["value"] == (await admin.ask(direct, f'show "{NAME}"')).splitlines()[1:]
    assert details["value"][0] == f"URL: {URL}"

    _, again = await run_form(admin, to, "show", {"name": "Nothing"})  # back, with the reason
    assert notes(again) == [("error", f"No add-in named “Nothing” in {prosody.muc}.")]

    first, changes = await run_form(admin, to, "audit", {"n": "1"})
    assert fields_of(first)["n"]["label"] == "How many (empty: 20)"
    assert notes(changes) == [("info", "The last 1 change, newest first.")]
    table = changes["command"]["form"]
    assert [dict(row) for row in table["items"]] == [{
        "when": table["items"][0]["when"], "who": jid(prosody, "admin"), "via": "dm",
        "what": f"attach “{NAME}” in {room} — {URL}",
    }]
    when, who, what = (await admin.ask(direct, "audit 1")).split("  ")
    assert what == f"attach “{NAME}” in {room} — {URL}"  # chat's words, as the table's
    text = fields_of(changes)["text"]["value"]
    assert text[:3] == [f"When: {when}", f"Who: {who.removesuffix(' (dm)')}", "Via: dm"]
    # Wrapped (poezio shows no value wider than half its form), at a space where it can be.
    assert [line.strip() for line in text[3:]] == [f"What: attach “{NAME}” in", f"{room} —", URL]
    _, again = await run_form(admin, to, "audit", {"n": "0"})
    assert notes(again) == [("error", "Give a number from 1 to 200, not “0”.")]
    assert fields_of(again)["n"]["value"] == "0"
    _, changes = await run_form(admin, to, "audit", {})  # empty: the last 20
    assert notes(changes) == [("info", "The last 2 changes, newest first.")]

    listed = await execute(admin, to, "rooms")  # one pool: nothing to ask
    assert listed["command"]["status"] == "completed"
    assert notes(listed) == [("info", "The bot serves 0 rooms and knows 1 more.")]
    assert [dict(row) for row in listed["command"]["form"]["items"]] == [
        {"room": room, "addin": NAME, "url": URL, "served": "no (not joined)"}
    ]
    assert await admin.ask(direct, "rooms") == f"• {room} (not joined): “{NAME}” — {URL}"
    assert fields_of(listed)["text"]["value"] == [
        f"Room: {room}", f"Add-in: {NAME}", f"URL: {URL}", "Served: no (not joined)"
    ]


async def test_a_long_form_answer_stays_within_the_budget_with_how_many_more(
    bot: BotHandle, people: People, prosody: Prosody
) -> None:
    """20 add-ins with URLs of ~1,900 characters, each attached to a room: list, audit and
    rooms hold the rows that fit within limits.reply_chars and say how many more."""
    assert bot.service is not None
    store, ops = bot.service.store, Actor("ops", "cli")
    for number in range(20):
        url = f"https://t{number}.example.org/{'x' * 1900}"
        addins.register(store, ops, pool=prosody.muc, name=f"T{number}", url=url)
        addins.attach(store, ops, room=f"r{number}@{prosody.muc}", name=f"T{number}")
    to = bot_jid(bot)
    admin = await panel_user(people, "admin")
    budget = bot.settings.limits.reply_chars
    _, audit = await run_form(admin, to, "audit", {"n": "40"})
    for result in (await execute(admin, to, "list"), audit, await execute(admin, to, "rooms")):
        assert result["command"]["status"] == "completed"
        assert len(str(result)) <= budget, len(str(result))
        shown = len(result["command"]["form"]["items"])
        assert 3 <= shown < 20, shown
        text = fields_of(result)["text"]["value"]  # the same rows, a blank line between
        assert text.count("") == shown - 1, text
        assert max(map(len, text)) == 60  # the long URLs wrapped
        ((_kind, note),) = notes(result)
        total = 40 if result is audit else 20
        assert note.endswith(f" The first {shown} are shown, and {total - shown} more are not.")


# --- 1: refusals ---------------------------------------------------------------------------


async def test_others_are_forbidden_and_a_session_is_its_starters_alone(
    bot: BotHandle, people: People
) -> None:
    to = bot_jid(bot)
    mallory = await panel_user(people, "mallory")
    for node in ("register", "join", "attach", "show", "audit", "rooms"):
        with pytest.raises(IqError) as refused:
            await execute(mallory, to, node)
        assert refused.value.condition == "forbidden"
        assert refused.value.iq["error"]["type"] == "auth"

    # An admin's session, taken up by someone else: refused before anything is read.
    admin = await panel_user(people, "admin")
    first = await execute(admin, to, "register")
    with pytest.raises(IqError) as refused:
        await submit(mallory, to, first, {"name": "Evil", "url": URL})
    assert refused.value.condition == "forbidden"
    # ... even by the same admin from another client: a session belongs to one full JID.
    other_admin = await panel_user(people, "admin")
    with pytest.raises(IqError) as refused:
        await submit(other_admin, to, first, {"name": "Evil", "url": URL})
    assert refused.value.condition == "bad-request"
    assert refused.value.iq.xml.find(f".//{{{NS_COMMANDS}}}bad-sessionid") is not None

    # Cancelled, the session is gone.
    cancelled = await admin.plugin["xep_0050"].send_command(
        to, "register", action="cancel", sessionid=first["command"]["sessionid"], timeout=10
    )
    assert cancelled["command"]["status"] == "canceled"
    with pytest.raises(IqError):
        await submit(admin, to, first, {"name": "Late", "url": URL})
    assert audit_rows(bot) == []


async def test_bad_input_is_refused_with_the_reason_and_nothing_is_stored(
    bot: BotHandle, people: People
) -> None:
    to = bot_jid(bot)
    admin = await panel_user(people, "admin")
    first, again = await run_form(admin, to, "register", {"name": "Evil", "url": "javascript:x"})
    # The form comes back, with the reason and with what was typed in: nothing is lost ...
    assert again["command"]["status"] == "executing"
    assert again["command"]["sessionid"] == first["command"]["sessionid"]
    ((kind, text),) = notes(again)
    assert kind == "error"
    assert text.startswith("URL refused: ")
    kept = fields_of(again)
    assert (kept["name"]["value"], kept["url"]["value"]) == ("Evil", "javascript:x")
    # The reason also in the form's title: profanity and poezio show no note with a form.
    assert again["command"]["form"]["title"] == f"Register an add-in — {text}"
    assert audit_rows(bot) == []
    # ... and the same session takes the corrected form.
    done = await submit(admin, to, again, {"name": "Evil", "url": URL})
    assert done["command"]["status"] == "completed"
    assert notes(done) == [("info", f"Registered “Evil” in conference.localhost: {URL}")]

    # poezio submits with "next" (slixmpp's continue_command), whatever the form offers.
    first = await execute(admin, to, "register")
    done = await submit(admin, to, first, {"name": "Rain", "url": URL}, action="next")
    assert notes(done) == [("info", f"Registered “Rain” in conference.localhost: {URL}")]

    _, again = await run_form(admin, to, "register", {"url": URL})
    assert notes(again) == [("error", "Fill in “Name”.")]
    assert fields_of(again)["url"]["value"] == URL
    _, again = await run_form(admin, to, "update", {"name": "Nothing", "url": URL})
    assert again["command"]["status"] == "executing"
    assert notes(again)[0][0] == "error"
    _, again = await run_form(admin, to, "update", {"name": "Evil"})  # both left empty
    assert again["command"]["status"] == "executing"
    assert notes(again) == [("error", "Fill in a new URL, a new name, or both.")]
    assert fields_of(again)["name"]["value"] == "Evil"
    assert [row.action for row in audit_rows(bot)] == ["register", "register"]


# --- 1: managers ---------------------------------------------------------------------------


async def test_a_manager_attaches_and_detaches_only_a_room_they_manage(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    to = bot_jid(bot)
    admin = await panel_user(people, "admin")
    reply = await admin.ask(jid(prosody, "addinbot"), f'register "{NAME}" {URL}')
    assert reply.startswith("Registered")
    alice = await panel_user(people, "alice")
    await alice.join_room(room, "alice")
    await make_non_anonymous(alice, room)
    bob = await panel_user(people, "bob")
    await bob.join_room(room, "bob")
    await admin_joins_bot(admin, prosody, bot, room)

    first, done = await run_form(alice, to, "attach", {"room": room, "name": NAME})
    room_field = fields_of(first)["room"]
    assert room_field["type"] == "list-single"
    assert [o["value"] for o in room_field["options"]] == [room]  # hers, and only hers
    assert notes(done) == [("info", f"{room} now has the add-in “{NAME}”: {URL}")]
    assert (await bob.next_message(10, said_in(room)))["body"] == attached_sentence(NAME, URL)
    assert (audit_rows(bot)[0].actor, audit_rows(bot)[0].via) == (jid(prosody, "alice"), "adhoc")

    # A room she does not manage, typed in over the form's choice: refused by the room rule.
    other = f"x{room}"
    first = await execute(alice, to, "detach")
    with pytest.raises(IqError) as refused:
        await submit(alice, to, first, {"room": other})
    assert refused.value.condition == "forbidden"
    assert "cannot see who manages it" in refused.value.text

    # bob is in the room, but manages nothing.
    with pytest.raises(IqError) as refused:
        await execute(bob, to, "attach")
    assert refused.value.condition == "forbidden"

    _, done = await run_form(alice, to, "detach", {"room": room})
    assert notes(done) == [("info", f"{room} no longer has the add-in “{NAME}”.")]
    assert addins.room_info(bot.service.store, room).addin is None  # type: ignore[union-attr]

    # Demoted while a form is open: the submit is checked again, and refused.
    first = await execute(alice, to, "attach")
    muc = alice.plugin["xep_0045"]
    await muc.set_affiliation(room, "owner", jid=jid(prosody, "carol"))  # the room keeps one
    await muc.set_affiliation(room, "member", jid=jid(prosody, "alice"))
    await until(lambda: occupant_of(bot, room, "alice").affiliation == "member", "the demotion")
    with pytest.raises(IqError) as refused:
        await submit(alice, to, first, {"room": room, "name": NAME})
    assert refused.value.condition == "forbidden"
    assert addins.room_info(bot.service.store, room).addin is None  # type: ignore[union-attr]
