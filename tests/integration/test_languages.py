"""The bot in its users' languages (issue 14, item 5), against a real Prosody with real
clients: a direct message is answered in its xml:lang, a room speaks its rooms.lang."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from slixmpp import JID, Message

from bot import addins
from bot.config import load_settings
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import TestClient, sent_by
from tests.integration.conftest import PASSWORD, BotHandle, create_room, jid, write_config

pytestmark = pytest.mark.xmpp

NICK = "AddinBot"
URL = "https://wiki.example.org/"
People = Callable[[str], Awaitable[TestClient]]


async def test_a_german_xml_lang_gets_german_help_and_errors(
    bot: BotHandle, people: People, prosody: Prosody
) -> None:
    bob = await people("bob")
    to = jid(prosody, "addinbot")

    helped = await bob.ask(to, "help", lang="de")
    assert helped.splitlines() == [
        "help [<command>] — listet die Befehle, die Sie ausführen dürfen",
        "list [pool <pool>] [page <page>] — listet die Add-ins mit ihren URLs und wie viele "
        "Räume jedes nutzen",
        "mute [<room>|all] — Ihnen wird der Link des Add-ins beim Betreten eines Raums nicht "
        "geschickt (all: in keinem Raum)",
        "unmute [<room>|all] — Ihnen wird der Link des Add-ins beim Betreten wieder geschickt "
        "(all: in jedem Raum)",
    ]
    assert await bob.ask(to, "help list", lang="de-DE") == (
        "Aufruf: list [pool <pool>] [page <page>] — listet die Add-ins mit ihren URLs und "
        "wie viele Räume jedes nutzen"
    )
    assert await bob.ask(to, "lsit", lang="de") == (
        "Unbekannter Befehl „lsit“. Meinten Sie „list“? Befehle: help, list, mute, unmute."
    )
    assert await bob.ask(to, f"register Wiki {URL}", lang="de") == (
        "Nur ein addinbot-Admin darf register ausführen."
    )

    admin = await people("admin")
    assert await admin.ask(to, "register Wiki ftp://wiki.example.org/", lang="de") == (
        "URL abgelehnt: nur http und https sind erlaubt."
    )
    assert await admin.ask(to, f"register Wiki {URL}", lang="de") == (
        f"„Wiki“ in {prosody.muc} registriert: {URL}"
    )
    assert await admin.ask(to, "list page 2", lang="de") == "Es gibt nur 1 Seite."


async def test_a_client_whose_stream_is_german_gets_german(
    bot: BotHandle, prosody: Prosody
) -> None:
    """A client that sets its language once, on its stream (slixmpp's, poezio's `lang`
    option), and not on each message: Prosody delivers the message with it."""
    client = TestClient(jid(prosody, "bob"), PASSWORD)
    client.default_lang = "de"
    await client.start(prosody.host, prosody.port)
    try:
        assert await client.ask(jid(prosody, "addinbot"), "lsit") == (
            "Unbekannter Befehl „lsit“. Meinten Sie „list“? Befehle: help, list, mute, unmute."
        )
    finally:
        await client.stop()


async def test_an_english_or_unmarked_message_gets_english(
    bot: BotHandle, people: People, prosody: Prosody
) -> None:
    bob = await people("bob")
    to = jid(prosody, "addinbot")
    for lang in (None, "en", "en-GB", "fr"):  # no catalog for fr: English
        assert await bob.ask(to, "help", lang=lang) == (
            "help [<command>] — lists the commands you may run\n"
            "list [pool <pool>] [page <page>] — lists the add-ins, with their URLs and how "
            "many rooms use each\n"
            "mute [<room>|all] — you are not sent the add-in's link on joining a room (all: "
            "any room)\n"
            "unmute [<room>|all] — you are sent the add-in's link again on joining (all: any "
            "room)"
        )
        assert await bob.ask(to, "lsit", lang=lang) == (
            "Unknown command “lsit”. Did you mean “list”? Commands: help, list, mute, unmute."
        )


@pytest.fixture
async def german_rooms_bot(prosody: Prosody, tmp_path: Path) -> AsyncIterator[BotHandle]:
    handle = BotHandle(load_settings(write_config(prosody, tmp_path, rooms_lang="de")))
    await handle.start()
    yield handle
    await handle.stop()


def from_bot(room: str, kind: str) -> Callable[[Message], bool]:
    return lambda msg: (
        msg["from"].bare == room and msg["from"].resource == NICK and msg["type"] == kind
        and bool(msg["body"])
    )


async def test_a_room_with_rooms_lang_de_hears_german(
    german_rooms_bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    to = jid(prosody, "addinbot")
    admin, alice = await people("admin"), await people("alice")
    await alice.join_room(room, "alice")  # alice makes (and owns) the room
    # The admin writes without xml:lang: the admin's answers are English.
    assert await admin.ask(to, f"register Wiki {URL}") == (
        f"Registered “Wiki” in {prosody.muc}: {URL}"
    )
    assert (await admin.ask(to, f"join {room}")).startswith(f"Joining {room}")
    await german_rooms_bot.in_room(room)

    # The owner attaches in the room: the room is told in German, with the link.
    alice.send_groupchat(room, "!addin attach Wiki")
    told = await alice.next_message(5, from_bot(room, "groupchat"))
    assert told["body"] == f"Das Add-in dieses Raums ist jetzt „Wiki“: {URL}"
    assert told["oob"]["url"] == URL

    # A joiner's private link: German too.
    carol = await people("carol")
    await carol.join_room(room, "carol")
    link = await carol.next_message(5, from_bot(room, "chat"))
    assert link["body"] == f"Das Add-in dieses Raums ist „Wiki“: {URL}"
    assert link["oob"]["url"] == URL

    # A refusal to a participant, privately: the room's language.
    carol.send_groupchat(room, "!addin detach")
    refused = await carol.next_message(5, from_bot(room, "chat"))
    assert refused["body"] == f"Nur die Besitzer und Admins von {room} dürfen das."

    # Detached by the admin (English answer), announced in German.
    assert await admin.ask(to, f"detach {room}") == f"{room} no longer has the add-in “Wiki”."
    gone = await alice.wait_for(sent_by(f"{room}/{NICK}", "groupchat",
                                        "Dieser Raum hat kein Add-in mehr."))
    assert gone["body"] == "Dieser Raum hat kein Add-in mehr."


# --- forms (XEP-0050): the IQ's xml:lang -------------------------------------------------


async def command_step(
    client: TestClient, to: JID, node: str, lang: str | None, *, sessionid: str = "",
    values: dict[str, str] | None = None,
) -> Any:
    """One step of an ad-hoc command, the IQ carrying `lang` as its xml:lang."""
    iq = client.make_iq_set(ito=to)
    if lang is not None:
        iq["lang"] = lang
    iq["command"]["node"] = node
    if sessionid:
        iq["command"]["sessionid"] = sessionid
        iq["command"]["action"] = "complete"
        form = client.plugin["xep_0004"].make_form("submit")
        for var, value in (values or {}).items():
            form.add_field(var=var, value=value)
        iq["command"].append(form)
    else:
        iq["command"]["action"] = "execute"
    return await iq.send(timeout=10)


async def test_a_form_is_in_the_requesters_xml_lang(
    bot: BotHandle, people: People, prosody: Prosody
) -> None:
    admin = await people("admin")
    admin.register_plugin("xep_0050")  # also loads xep_0004, for forms
    assert bot.service is not None
    to = JID(bot.service.edge.boundjid.full)

    first = await command_step(admin, to, "register", "de")
    form = first["command"]["form"]
    assert form["title"] == "Ein Add-in registrieren"
    labels = {var: field["label"] for var, field in form.get_fields().items()}
    assert labels == {"name": "Name", "url": "URL (http oder https)"}
    sid = first["command"]["sessionid"]

    refused = await command_step(admin, to, "register", "de", sessionid=sid,
                                 values={"name": "Wiki", "url": "ftp://wiki.example.org/"})
    assert list(refused["command"]["notes"]) == [
        ("error", "URL abgelehnt: nur http und https sind erlaubt.")
    ]
    done = await command_step(admin, to, "register", "de", sessionid=sid,
                              values={"name": "Wiki", "url": URL})
    assert list(done["command"]["notes"]) == [
        ("info", f"„Wiki“ in {prosody.muc} registriert: {URL}")
    ]

    english = await command_step(admin, to, "register", None)
    assert english["command"]["form"]["title"] == "Register an add-in"
    labels = {v: f["label"] for v, f in english["command"]["form"].get_fields().items()}
    assert labels == {"name": "Name", "url": "URL (http or https)"}


# --- invitations (XEP-0249): the answers in the invitation's xml:lang -----------------------


def german_invitation(client: TestClient, to: str, room: str) -> None:
    invitation = client.make_message(mto=JID(to))
    invitation["lang"] = "de"
    ET.SubElement(invitation.xml, "{jabber:x:conference}x", {"jid": room})
    invitation.send()


async def test_a_german_invitation_is_declined_in_german(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    mallory = await people("mallory")
    to = jid(prosody, "addinbot")
    german_invitation(mallory, to, room)
    answer = await mallory.wait_for(sent_by(to, "chat"))
    assert answer["body"] == (
        f"Der Bot hat die Einladung nach {room} nicht angenommen: es gibt keinen Raum {room}."
    )


async def test_a_decline_after_a_look_is_german_and_its_record_english(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    alice = await people("alice")  # creates the room, and owns it
    await alice.join_room(room, "alice")
    muc = alice.plugin["xep_0045"]
    form = await muc.get_room_config(room)
    form.get_fields()["muc#roomconfig_whois"]["value"] = "anyone"  # the bot sees real JIDs
    await muc.set_room_config(room, form)
    bob = await people("bob")
    await bob.join_room(room, "bob")
    to = jid(prosody, "addinbot")
    german_invitation(bob, to, room)  # a participant's: the bot looks, and declines
    answer = await bob.wait_for(sent_by(to, "chat"), timeout=10)
    assert answer["body"] == (
        f"Der Bot hat die Einladung nach {room} nicht angenommen: "
        f"Nur die Besitzer und Admins von {room} dürfen das."
    )
    # The audit log keeps its record in English, whoever reads it later. The decline is
    # sent, then recorded: wait for the row rather than race it.
    assert bot.service is not None
    store = bot.service.store
    for _ in range(500):
        rows = [row for row in addins.audit(store, limit=5) if row.room == room]
        if rows:
            break
        await asyncio.sleep(0.01)
    assert [row.detail for row in rows] == [f"Only the owners and admins of {room} may do that."]


async def test_an_admin_is_thanked_in_the_invitations_language(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    await create_room(prosody, room)
    admin = await people("admin")
    to = jid(prosody, "addinbot")
    german_invitation(admin, to, room)
    thanks = await admin.wait_for(sent_by(to, "chat"), timeout=10)
    assert thanks["body"] == (
        f"Danke für die Einladung: Der Bot bedient jetzt {room} und betritt den Raum auch "
        "nach Neustarts wieder. Weisen Sie dort mit „!addin attach <name>“ ein Add-in zu "
        "(„!addin list“ zeigt die Add-ins)."
    )
