"""Invitations to rooms, direct (XEP-0249) and mediated (XEP-0045 §7.8.2), from real clients
to the bot on Prosody: who is taken at their word, who is checked in the room, and what the
audit log keeps."""

from __future__ import annotations

import asyncio
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable

import pytest
from slixmpp import JID, Message
from slixmpp.exceptions import IqError

from bot import addins
from bot.invitations import DECLINED
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import TestClient, sent_by
from tests.integration.conftest import BotHandle, jid

pytestmark = pytest.mark.xmpp

NICK = "AddinBot"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
QUIET_S = 0.5

People = Callable[[str], Awaitable[TestClient]]


def engine(handle: BotHandle):  # the bot's Store
    assert handle.service is not None
    return handle.service.store


def audit_rows(handle: BotHandle) -> list[addins.AuditEntry]:
    return addins.audit(engine(handle), limit=1000)


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def owner_of(people: People, room: str, *, non_anonymous: bool = True) -> TestClient:
    """alice creates (and so owns) `room`; the bot is to see real JIDs there unless not."""
    alice = await people("alice")
    await alice.join_room(room, "alice")
    if non_anonymous:
        muc = alice.plugin["xep_0045"]
        form = await muc.get_room_config(room)
        form.get_fields()["muc#roomconfig_whois"]["value"] = "anyone"
        await muc.set_room_config(room, form)
    return alice


def watch_bot(client: TestClient, room: str) -> asyncio.Queue[str]:
    """The bot's presences in `room` as `client` sees them: "available" or "unavailable"."""
    seen: asyncio.Queue[str] = asyncio.Queue()

    def on_presence(presence) -> None:  # a slixmpp Presence
        if presence["from"] == JID(f"{room}/{NICK}"):
            seen.put_nowait(presence["type"])

    client.add_event_handler("groupchat_presence", on_presence)
    return seen


def declined_through(room: str) -> Callable[[Message], bool]:
    def match(msg: Message) -> bool:
        x = msg.xml.find(f"{{{NS_MUC_USER}}}x")
        return msg["from"].bare == room and x is not None and (
            x.find(f"{{{NS_MUC_USER}}}decline") is not None
        )

    return match


def declined_directly(bot_bare: str) -> Callable[[Message], bool]:
    """A chat message from the bot (a decline, or the thanks for an accepted invitation)."""
    return lambda m: m["from"].bare == bot_bare and m["type"] == "chat" and bool(m["body"])


async def test_an_admins_direct_invitation_is_accepted_at_once(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    alice = await owner_of(people, room, non_anonymous=False)
    admin = await people("admin")
    admin.register_plugin("xep_0249")
    # The admin need not be in the room: the server vouches for who sent the invitation.
    admin.plugin["xep_0249"].send_invitation(
        JID(jid(prosody, "addinbot")), JID(room), reason="serve us"
    )
    await bot.in_room(room)
    thanks = await admin.wait_for(declined_directly(jid(prosody, "addinbot")), timeout=10)
    assert thanks["body"].startswith(f"Thanks for the invitation: the bot now serves {room}")
    assert addins.room_info(engine(bot), room).joined
    (row,) = [e for e in audit_rows(bot) if e.room == room]
    assert (row.action, row.actor, row.via) == ("join", jid(prosody, "admin"), "invite")
    # It stays, and is served as after `join`.
    reply = await admin.ask(jid(prosody, "addinbot"), "rooms")
    assert room in reply
    await alice.expect_no_message(QUIET_S, lambda m: m["from"].resource == NICK)


async def test_an_owners_mediated_invitation_is_checked_in_the_room_and_accepted(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    alice = await owner_of(people, room)
    seen = watch_bot(alice, room)
    alice.plugin["xep_0045"].invite(room, jid(prosody, "addinbot"), reason="please")
    assert await asyncio.wait_for(seen.get(), 10) == "available"
    await until(lambda: addins.room_info(engine(bot), room).joined, "the room remembered")
    (row,) = [e for e in audit_rows(bot) if e.room == room]
    assert (row.action, row.actor, row.via) == ("join", jid(prosody, "alice"), "invite")
    # Answered in the room, the bot is there; a leave or rejoin it made before answering
    # would have reached alice before the answer.
    alice.send_groupchat(room, "!addin")
    said = await alice.wait_for(sent_by(f"{room}/{NICK}", "groupchat"), timeout=10)
    assert said["body"] == "This room has no add-in."
    assert seen.empty(), "the bot left, or joined again"  # it stayed: no leave, no rejoin
    assert bot.service is not None
    assert bot.service.app.rooms.is_live(room)
    assert room in bot.service.app.membership.wanted


async def test_a_participants_invitation_is_declined_and_the_bot_leaves(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    alice = await owner_of(people, room)
    seen = watch_bot(alice, room)
    bob = await people("bob")
    await bob.join_room(room, "bob")
    bob.plugin["xep_0045"].invite(room, jid(prosody, "addinbot"))

    declined = await bob.next_message(10, declined_through(room))
    reason = declined.xml.find(f".//{{{NS_MUC_USER}}}reason")
    assert reason is not None
    assert reason.text == f"Only the owners and admins of {room} may do that."
    assert await asyncio.wait_for(seen.get(), 10) == "available"  # it looked,
    assert await asyncio.wait_for(seen.get(), 10) == "unavailable"  # and left
    assert not addins.room_info(engine(bot), room).joined
    # The decline is sent, then recorded: wait for the row rather than race it.
    await until(lambda: any(e.room == room for e in audit_rows(bot)), "the audit row")
    (row,) = [e for e in audit_rows(bot) if e.room == room]
    assert (row.action, row.actor, row.via) == (DECLINED, jid(prosody, "bob"), "invite")
    assert row.detail == reason.text


async def test_an_owner_in_a_room_that_hides_real_jids_cannot_be_checked(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    alice = await owner_of(people, room, non_anonymous=False)
    alice.plugin["xep_0045"].invite(room, jid(prosody, "addinbot"))
    declined = await alice.next_message(10, declined_through(room))
    assert "real addresses" in declined.xml.findtext(f".//{{{NS_MUC_USER}}}reason", "")
    await until(lambda: any(e.action == DECLINED for e in audit_rows(bot)), "the audit row")
    assert not addins.room_info(engine(bot), room).joined


async def test_a_strangers_direct_invitation_to_no_room_never_creates_it(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    mallory = await people("mallory")
    mallory.register_plugin("xep_0249")
    bot_bare = jid(prosody, "addinbot")
    mallory.plugin["xep_0249"].send_invitation(JID(bot_bare), JID(room))
    answer = await mallory.next_message(10, declined_directly(bot_bare))
    assert answer["body"] == (
        f"The bot did not accept the invitation to {room}: there is no room {room}."
    )
    with pytest.raises(IqError) as missing:  # the bot did not create it by looking
        await mallory.plugin["xep_0030"].get_info(jid=JID(room), timeout=10)
    assert missing.value.condition == "item-not-found"
    # Declined without a look: counted and logged, not an audit row (a flood of them would
    # push everything else out of `audit`); decided before the answer was sent.
    assert audit_rows(bot) == []


async def test_even_an_admin_cannot_invite_the_bot_outside_the_served_pools(
    bot: BotHandle, people: People, prosody: Prosody
) -> None:
    admin = await people("admin")
    admin.register_plugin("xep_0249")
    bot_bare = jid(prosody, "addinbot")
    elsewhere = f"lobby@elsewhere.{prosody.domain}"
    admin.plugin["xep_0249"].send_invitation(JID(bot_bare), JID(elsewhere))
    answer = await admin.next_message(10, declined_directly(bot_bare))
    assert answer["body"] == (
        f"The bot did not accept the invitation to {elsewhere}: Room {elsewhere} is not in "
        f"a served pool ({prosody.muc})."
    )
    assert audit_rows(bot) == []  # declined without a look: counted, not recorded


async def test_an_invitation_with_a_body_is_not_taken_for_a_command(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    """A direct invitation may carry a body; the bot must not answer it as chat."""
    mallory = await people("mallory")
    bot_bare = jid(prosody, "addinbot")
    msg = mallory.make_message(mto=JID(bot_bare), mbody="help", mtype="chat")
    msg.append(_conference(f"nosuch-{room}"))
    msg.send()
    answer = await mallory.next_message(10, declined_directly(bot_bare))
    assert answer["body"].startswith("The bot did not accept the invitation")
    await mallory.expect_no_message(QUIET_S, declined_directly(bot_bare))


def _conference(room: str) -> ET.Element:
    return ET.Element("{jabber:x:conference}x", {"jid": room})


async def test_an_invitation_to_a_look_alike_of_a_served_room_touches_the_real_one_not(
    bot: BotHandle, people: People, prosody: Prosody
) -> None:
    """Issue 12, finding 1: "ᵃ" (U+1D43, added after Unicode 3.2) is no letter to the
    server's nodeprep but "a" to slixmpp's. An invitation naming ᵃ…@ once made the bot join
    and, twenty seconds on, leave the real a…@ it serves. Now it is declined at once and
    nothing at all goes to the real room."""
    name = f"a{uuid.uuid4().hex[:10]}"
    room, look_alike = f"{name}@{prosody.muc}", f"\u1d43{name[1:]}@{prosody.muc}"
    alice = await owner_of(people, room, non_anonymous=False)
    admin = await people("admin")
    bot_jid = jid(prosody, "addinbot")
    assert (await admin.ask(bot_jid, f"join {room}")).startswith(f"Joining {room}")
    await bot.in_room(room)
    seen = watch_bot(alice, room)
    reply = await admin.ask(bot_jid, f"join {look_alike}")
    assert "is not a room address the bot accepts" in reply

    mallory = await people("mallory")
    invitation = mallory.make_message(mto=JID(bot_jid))
    ET.SubElement(invitation.xml, "{jabber:x:conference}x", {"jid": look_alike})
    invitation.send()
    declined = await mallory.wait_for(declined_directly(bot_jid), timeout=5)
    assert "not a room address" in declined["body"]
    alice.send_groupchat(room, "!addin")  # the bot answers in the room: it is still there
    said = await alice.wait_for(sent_by(f"{room}/{NICK}", "groupchat"), timeout=10)
    assert said["body"] == "This room has no add-in."
    assert seen.empty(), "the bot left the real room, or joined it again"
    assert [e.room for e in audit_rows(bot) if e.action == "join"] == [room]
