"""Issue 12, finding 3, on a real Prosody: invitations are bounded. One stranger inviting
the bot to sixty rooms of her own, three hundred invitations to rooms the bot does not
serve, ten invitations to someone else's room; and (issue 13) what the inviter is told.

Each flood test prints its figures (`pytest -s`): the README's Security table quotes them.
The bot's decisions are counted by wrapping its `on_invitation` (the edge hands every
invitation to it), so a test knows when every invitation has been decided, whatever the
decision, even a silent one."""

from __future__ import annotations

import asyncio
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from slixmpp import JID

from bot import addins
from bot.config import Settings
from bot.invitations import DECLINED
from bot.metrics import INVITATIONS, METRICS
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import TestClient
from tests.integration.conftest import BotHandle, create_room, jid
from tests.integration.test_invitations import declined_directly as from_bot
from tests.integration.test_invitations import declined_through

pytestmark = pytest.mark.xmpp

NICK = "AddinBot"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"

People = Callable[[str], Awaitable[TestClient]]


async def until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


class Counted:
    """The bot's running service, with the invitations it has been handed counted."""

    def __init__(self, handle: BotHandle) -> None:
        assert handle.service is not None
        self.handle = handle
        self.service = handle.service
        self.app = handle.service.app
        self.handed = 0
        original = self.app.on_invitation

        def counting(*args, **kwargs):  # a pass-through
            self.handed += 1
            return original(*args, **kwargs)

        self.app.on_invitation = counting  # type: ignore[method-assign]

    def audit(self) -> list[addins.AuditEntry]:
        return addins.audit(self.service.store, limit=10_000)

    def idle(self) -> bool:
        """No room is being looked at."""
        return not self.app.invitations.looking

    async def decided(self, count: int) -> None:
        await until(lambda: self.handed >= count, f"{count} invitations handed to the bot")
        await until(self.idle, "the rooms looked at to be decided")


@pytest.fixture
async def counted(bot: BotHandle) -> Counted:
    return Counted(bot)


def limited(settings: Settings, **limits: float) -> Settings:
    return settings.model_copy(
        update={"limits": settings.limits.model_copy(update=limits)}
    )


@pytest.fixture
async def strict(bot_settings: Settings) -> AsyncIterator[Counted]:
    """A bot with the default per-sender limit (10 in 10 s), as shipped."""
    handle = BotHandle(limited(bot_settings, sender=10, room=30, window_s=10.0))
    await handle.start()
    try:
        yield Counted(handle)
    finally:
        await handle.stop()


def bot_joins(client: TestClient, rooms: set[str]) -> list[tuple[str, str]]:
    """The bot's presences in `rooms` as `client` sees them: (room, type), in order."""
    seen: list[tuple[str, str]] = []

    def on_presence(presence) -> None:  # a slixmpp Presence
        if presence["from"].bare in rooms and presence["from"].resource == NICK:
            seen.append((presence["from"].bare, presence["type"]))

    client.add_event_handler("groupchat_presence", on_presence)
    return seen


async def own_room(client: TestClient, room: str, nick: str, *, whois: str = "anyone") -> None:
    await client.join_room(room, nick)
    muc = client.plugin["xep_0045"]
    form = await muc.get_room_config(room)
    form.get_fields()["muc#roomconfig_whois"]["value"] = whois
    await muc.set_room_config(room, form)


def direct_invitation(client: TestClient, to: str, room: str) -> None:
    msg = client.make_message(mto=JID(to))
    ET.SubElement(msg.xml, "{jabber:x:conference}x", {"jid": room})
    msg.send()


def served(counted: Counted, rooms: set[str]) -> set[str]:
    return rooms & counted.app.membership.wanted


# --- the floods of finding 3 -------------------------------------------------------------------


async def test_sixty_rooms_of_a_strangers_own_do_not_all_become_the_bots(
    counted: Counted, people: People, prosody: Prosody
) -> None:
    """Before: all 60 accepted (17.6 s), remembered and rejoined at every start."""
    mallory = await people("mallory")
    rooms = [f"m{i:02d}{uuid.uuid4().hex[:8]}@{prosody.muc}" for i in range(60)]
    for room in rooms:
        await own_room(mallory, room, "mallory")
    presences = bot_joins(mallory, set(rooms))
    counts_before = {o: METRICS.invitations_seen(o) for o in INVITATIONS}
    started = time.perf_counter()
    for number, room in enumerate(rooms, 1):
        mallory.plugin["xep_0045"].invite(room, jid(prosody, "addinbot"))
        await counted.decided(number)
    took = time.perf_counter() - started
    accepted = served(counted, set(rooms))
    await until(lambda: len([e for e in counted.audit() if e.action == "join"]) == len(accepted),
                "the accepted rooms remembered")
    joins = sum(1 for _room, kind in presences if kind == "available")
    print(f"\n60 own rooms: {len(accepted)} accepted, {joins} joins, "
          f"{len(counted.audit())} audit rows, in {took:.1f} s")
    per_inviter = counted.service.settings.invitations.per_inviter
    assert len(accepted) == per_inviter
    assert joins == per_inviter
    # The rest were declined: one notice, then silence (a decline each is a flood too).
    told = await mallory.wait_for(lambda m: declined_through(m["from"].bare)(m), timeout=10)
    assert told.xml.findtext(f".//{{{NS_MUC_USER}}}reason", "").startswith(
        "Too many invitations from you: the bot looks at 5 rooms every 24 h for one person."
    )
    counts = {o: METRICS.invitations_seen(o) - counts_before[o] for o in INVITATIONS}
    assert counts == {"accepted": per_inviter, "declined_after_look": 0, "declined": 1,
                      "dropped": 60 - per_inviter - 1}
    remembered = {info.jid for info in addins.list_rooms(counted.service.store, joined_only=True)}
    assert remembered == accepted


async def test_three_hundred_invitations_to_unserved_rooms_leave_no_audit_rows(
    strict: Counted, people: People, prosody: Prosody
) -> None:
    """Before: 301 audit rows and 301 declines in 5.2 s; `audit` showed nothing else."""
    mallory = await people("mallory")
    bot_bare = jid(prosody, "addinbot")
    started = time.perf_counter()
    for i in range(301):
        direct_invitation(mallory, bot_bare, f"lobby{i}@elsewhere.{prosody.domain}")
    await strict.decided(301)
    took = time.perf_counter() - started
    # Every decline was sent before the bot answered this ping (one stream, in order).
    await mallory.plugin["xep_0199"].send_ping(JID(bot_bare), timeout=10)
    declines = [m for m in mallory.drain() if from_bot(bot_bare)(m)]
    rows = [e for e in strict.audit() if e.action == DECLINED]
    print(f"\n301 unserved: {len(declines)} declines, {len(rows)} audit rows, "
          f"decided in {took:.2f} s")
    assert rows == []
    limit = strict.service.settings.limits.sender
    assert len(declines) == limit + 1  # ten answers, then one notice, then silence
    assert "Too many invitations from you" in declines[-1]["body"]
    assert all("is not in a served pool" in m["body"] for m in declines[:limit])


async def test_ten_invitations_to_someone_elses_room_make_one_visit(
    counted: Counted, people: People, prosody: Prosody, room: str
) -> None:
    """Before: the bot joined and left alice's room ten times, in front of its occupants."""
    alice = await people("alice")
    await own_room(alice, room, "alice")
    seen = bot_joins(alice, {room})
    mallory = await people("mallory")
    bot_bare = jid(prosody, "addinbot")
    started = time.perf_counter()
    answers = []
    for number in range(1, 11):
        direct_invitation(mallory, bot_bare, room)
        answers.append(await mallory.wait_for(from_bot(bot_bare), timeout=15))
        await counted.decided(number)
    took = time.perf_counter() - started
    await mallory.plugin["xep_0199"].send_ping(JID(bot_bare), timeout=10)
    joins = sum(1 for _room, kind in seen if kind == "available")
    print(f"\n10 invitations to alice's room: {joins} joins, {len(answers)} declines, "
          f"{len([e for e in counted.audit() if e.room == room])} audit rows, in {took:.2f} s")
    assert joins == 1
    assert answers[0]["body"].endswith(
        f"You must be in {room} as one of its owners or admins to do that."
    )
    for answer in answers[1:]:
        assert "looked at" in answer["body"], answer["body"]
    assert not served(counted, {room})


# --- admins lose nothing -----------------------------------------------------------------------


async def test_an_admins_invitations_are_not_held_to_the_strangers_limits(
    counted: Counted, people: People, prosody: Prosody
) -> None:
    carol_rooms = [f"a{i}{uuid.uuid4().hex[:8]}@{prosody.muc}" for i in range(8)]
    for room in carol_rooms:
        await create_room(prosody, room)
    admin = await people("admin")
    admin.register_plugin("xep_0249")
    for number, room in enumerate(carol_rooms, 1):
        admin.plugin["xep_0249"].send_invitation(JID(jid(prosody, "addinbot")), JID(room))
        await counted.decided(number)
    for room in carol_rooms:
        await counted.handle.in_room(room)
    assert served(counted, set(carol_rooms)) == set(carol_rooms)


# --- two defects: an admin's invitation to no room ----------------------------------------------


async def test_an_admins_invitation_to_a_room_that_does_not_exist_is_declined(
    counted: Counted, people: People, prosody: Prosody, room: str
) -> None:
    """Before: recorded as accepted (a `join` row), then tried again and again forever."""
    admin = await people("admin")
    admin.register_plugin("xep_0249")
    bot_bare = jid(prosody, "addinbot")
    admin.plugin["xep_0249"].send_invitation(JID(bot_bare), JID(room))
    answer = await admin.wait_for(from_bot(bot_bare), timeout=10)
    assert answer["body"] == (
        f"The bot did not accept the invitation to {room}: there is no room {room}."
    )
    await counted.decided(1)
    assert room not in counted.app.membership.wanted
    assert counted.audit() == []


# --- issue 13: what the inviter is told ---------------------------------------------------------


async def test_an_accepted_invitation_is_confirmed_to_the_inviter(
    counted: Counted, people: People, prosody: Prosody, room: str
) -> None:
    alice = await people("alice")
    await own_room(alice, room, "alice")
    bot_bare = jid(prosody, "addinbot")
    alice.plugin["xep_0045"].invite(room, bot_bare)
    said = await alice.wait_for(from_bot(bot_bare), timeout=15)
    assert said["body"] == (
        f"Thanks for the invitation: the bot now serves {room} and will rejoin it after "
        f"restarts. Attach an add-in there with “!addin attach <name>” (“!addin list” shows "
        f"them)."
    )
    assert room in counted.app.membership.wanted


async def test_a_decline_tells_the_owner_what_to_do(
    counted: Counted, people: People, prosody: Prosody, room: str
) -> None:
    alice = await people("alice")
    await own_room(alice, room, "alice", whois="moderators")  # the bot sees no real JIDs
    alice.plugin["xep_0045"].invite(room, jid(prosody, "addinbot"))
    declined = await alice.wait_for(declined_through(room), timeout=15)
    reason = declined.xml.findtext(f".//{{{NS_MUC_USER}}}reason", "")
    assert reason == (
        f"{room} does not show the bot its occupants' real addresses, so it cannot tell "
        f"that you own or administer it. Give the bot the admin affiliation in {room} (it "
        f"then sees them), or make the room's real JIDs visible to everyone, and invite it "
        f"again."
    )
