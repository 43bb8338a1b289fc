"""Add-ins in rooms, against a real Prosody with real clients: attach and detach in the room,
announcements to the room and to joiners, who may do what, restarts, kicks and bans."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from slixmpp import JID, Message, Presence

from bot import addins, membership
from bot.announce import attached_sentence, welcome_sentence
from bot.config import load_settings
from bot.runner import Service
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import TestClient
from tests.integration.conftest import XMPP, BotHandle, jid, write_config

pytestmark = pytest.mark.xmpp

NICK = "AddinBot"
NAME = "Stock Ticker"
URL = "https://stocks.example.org/panel"
NEW_URL = "https://stocks.example.org/v2"
OTHER = "Weather"
OTHER_URL = "https://weather.example.org/"
QUIET_S = 0.5  # long enough for the bot to have answered, had it been going to
REJOIN_S = 0.5  # the first rejoin delay after a kick, shortened for the test

People = Callable[[str], Awaitable[TestClient]]


# --- helpers -------------------------------------------------------------------------------


def from_bot(room: str, kind: str) -> Callable[[Message], bool]:
    """A message the bot sent in (groupchat) or through (chat) `room`, with a body."""

    def match(msg: Message) -> bool:
        return (
            msg["from"].bare == room and msg["from"].resource == NICK
            and msg["type"] == kind and bool(msg["body"])
        )

    return match


def anything_from_bot(room: str) -> Callable[[Message], bool]:
    return lambda msg: msg["from"].bare == room and msg["from"].resource == NICK


async def said_in_room(client: TestClient, room: str, timeout: float = 5.0) -> Message:
    return await client.next_message(timeout, from_bot(room, "groupchat"))


async def told_privately(client: TestClient, room: str, timeout: float = 5.0) -> Message:
    return await client.next_message(timeout, from_bot(room, "chat"))


async def refused_as_not_manager(sender: TestClient, watcher: TestClient, room: str) -> None:
    """`sender` is told privately that only managers may do that; the room hears nothing."""
    refusal = await told_privately(sender, room)
    assert refusal["body"] == f"Only the owners and admins of {room} may do that."
    await watcher.expect_no_message(QUIET_S, anything_from_bot(room))


def assert_link(msg: Message, name: str, url: str) -> None:
    """The room is told its add-in changed."""
    assert msg["body"] == attached_sentence(name, url)
    assert msg["oob"]["url"] == url
    assert msg["oob"]["desc"] == name


def assert_welcome(msg: Message, name: str, url: str) -> None:
    """A joiner, or someone asking, is told the room's add-in: nothing changed."""
    assert msg["body"] == welcome_sentence(name, url)
    assert msg["oob"]["url"] == url
    assert msg["oob"]["desc"] == name


def service(handle: BotHandle) -> Service:
    assert handle.service is not None
    return handle.service


def attached(handle: BotHandle, room: str) -> str | None:
    return addins.room_info(service(handle).store, room).addin


def audit_rows(handle: BotHandle) -> list[addins.AuditEntry]:
    return addins.audit(service(handle).store, limit=1000)


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def joiners_seen_to(handle: BotHandle) -> list[str]:
    """The nicknames of joiners the bot has finished with — told, or found to need no
    telling — in order. A test that says "this joiner is told nothing" waits for its turn
    here rather than for a while that a slow database outlasts."""
    announcer = service(handle).app.announcer
    done: list[str] = []
    tell = announcer._tell_joiners

    async def counted(room: str, joiners: list) -> None:
        await tell(room, joiners)
        done.extend(occupant.nick for occupant in joiners)

    announcer._tell_joiners = counted  # type: ignore[method-assign]
    return done


async def told_nothing_on_joining(
    handle: BotHandle, client: TestClient, room: str, nick: str, done: list[str]
) -> None:
    """`client` joins `room` as `nick`; once the bot has dealt with the arrival, and a
    message it sent would have had time to come, nothing came from the bot."""
    before = done.count(nick)
    await client.join_room(room, nick)
    await until(lambda: done.count(nick) > before, f"the bot dealing with {nick}'s arrival")
    await client.expect_no_message(QUIET_S, anything_from_bot(room))


class Scene:
    """The admin's DM line to the bot, and rooms set up with an owner who created them."""

    def __init__(self, handle: BotHandle, people: People, prosody: Prosody) -> None:
        self.handle = handle
        self.people = people
        self.prosody = prosody
        self.bot_jid = jid(prosody, "addinbot")
        self._admin: TestClient | None = None

    async def admin_client(self) -> TestClient:
        if self._admin is None:
            self._admin = await self.people("admin")
        return self._admin

    async def admin(self, body: str) -> str:
        """What the admin (in roles.admins) is answered by direct message."""
        return await (await self.admin_client()).ask(self.bot_jid, body)

    async def register(self, name: str = NAME, url: str = URL, pool: str = "") -> None:
        suffix = f" pool {pool}" if pool else ""
        reply = await self.admin(f'register "{name}" {url}{suffix}')
        assert reply.startswith(f"Registered “{name}”"), reply

    async def occupy(self, room: str, owner: str = "alice", *others: str) -> list[TestClient]:
        """`owner` creates the room (and so owns it), `others` join, then the bot joins.

        Everyone is present before the bot, so none of them is a joiner to be told
        anything: what they receive afterwards is what the test makes happen."""
        clients = []
        for user in (owner, *others):
            client = await self.people(user)
            await client.join_room(room, user)
            clients.append(client)
        reply = await self.admin(f"join {room}")
        assert reply.startswith(f"Joining {room}"), reply
        await self.handle.in_room(room)
        return clients


@pytest.fixture
def scene(bot: BotHandle, people: People, prosody: Prosody) -> Scene:
    return Scene(bot, people, prosody)


# --- 1, 2, 12: commands in the room --------------------------------------------------------


async def test_manager_attaches_in_the_room_and_everyone_is_told(
    scene: Scene, bot: BotHandle, room: str
) -> None:
    await scene.register()
    alice, bob, carol = await scene.occupy(room, "alice", "bob", "carol")

    alice.send_groupchat(room, f'!addin attach "{NAME}"')

    for client in (alice, bob, carol):
        assert_link(await said_in_room(client, room), NAME, URL)
    assert attached(bot, room) == NAME
    entry = audit_rows(bot)[0]
    assert (entry.action, entry.via, entry.room, entry.addin) == ("attach", "room", room, NAME)
    # One announcement, not an echo loop on the bot's own reflected message.
    await bob.expect_no_message(QUIET_S, anything_from_bot(room))


async def test_participant_who_is_not_a_manager_is_refused_privately(
    scene: Scene, bot: BotHandle, room: str
) -> None:
    await scene.register()
    await scene.register(OTHER, OTHER_URL)
    alice, bob = await scene.occupy(room, "alice", "bob")
    alice.send_groupchat(room, f'!addin attach "{NAME}"')
    await said_in_room(alice, room)
    await said_in_room(bob, room)
    before = len(audit_rows(bot))

    bob.send_groupchat(room, f"!addin attach {OTHER}")

    await refused_as_not_manager(bob, alice, room)
    await bob.expect_no_message(0, anything_from_bot(room))
    assert attached(bot, room) == NAME
    assert len(audit_rows(bot)) == before

    bob.send_groupchat(room, "!addin detach")
    await refused_as_not_manager(bob, alice, room)
    assert attached(bot, room) == NAME


async def test_anyone_asks_for_the_add_in_and_the_room_is_answered(
    scene: Scene, bot: BotHandle, room: str
) -> None:
    await scene.register()
    alice, bob = await scene.occupy(room, "alice", "bob")

    bob.send_groupchat(room, "!addin")
    for client in (alice, bob):
        assert (await said_in_room(client, room))["body"] == "This room has no add-in."

    alice.send_groupchat(room, f'!addin attach "{NAME}"')
    for client in (alice, bob):
        assert_link(await said_in_room(client, room), NAME, URL)

    for command in ("!addin", "!addin show", f"{NICK}: show", f"{NICK}, show"):
        bob.send_groupchat(room, command)
        for client in (alice, bob):
            assert_welcome(await said_in_room(client, room), NAME, URL)
    # Conversation that merely mentions the bot or the prefix is not a command.
    bob.send_groupchat(room, "what does !addin do? ask AddinBot")
    await alice.expect_no_message(QUIET_S, anything_from_bot(room))


async def test_the_bots_own_reflected_message_is_never_acted_on(
    scene: Scene, bot: BotHandle, room: str
) -> None:
    await scene.register()
    alice, bob = await scene.occupy(room, "alice", "bob")
    alice.send_groupchat(room, f'!addin attach "{NAME}"')
    await said_in_room(bob, room)

    # The bot says something that would be a command from anyone else; the room reflects it
    # back to the bot, which must not answer itself (nor detach on its own say-so).
    service(bot).edge.send_room(room, "!addin")
    service(bot).edge.send_room(room, "!addin detach")
    # Both are in the room (however slow it is today), and then nothing else follows.
    said = from_bot(room, "groupchat")
    reflected = [await bob.wait_for(said)]
    reflected.append(await bob.wait_for(said))
    seen = await bob.expect_no_message(0.75, from_bot(room, "chat"))
    from_the_bot = [m["body"] for m in reflected + seen if said(m)]
    assert from_the_bot == ["!addin", "!addin detach"]
    assert attached(bot, room) == NAME


# --- 3: joiners ----------------------------------------------------------------------------


async def test_a_joiner_is_told_once_and_again_after_a_url_update(
    scene: Scene, bot: BotHandle, room: str, people: People
) -> None:
    await scene.register()
    (alice,) = await scene.occupy(room, "alice")
    alice.send_groupchat(room, f'!addin attach "{NAME}"')
    await said_in_room(alice, room)

    bob = await people("bob")
    await bob.join_room(room, "bob")
    assert_welcome(await told_privately(bob, room), NAME, URL)
    await alice.expect_no_message(0.2, anything_from_bot(room))  # nothing said to the room

    joiners = joiners_seen_to(bot)
    await bob.leave_room_wait(room, "bob")
    await told_nothing_on_joining(bot, bob, room, "bob", joiners)

    reply = await scene.admin(f'update "{NAME}" url {NEW_URL}')
    assert reply.startswith(f"“{NAME}” now points to {NEW_URL}"), reply
    for client in (alice, bob):
        assert_link(await said_in_room(client, room), NAME, NEW_URL)

    carol = await people("carol")
    await carol.join_room(room, "carol")
    assert_welcome(await told_privately(carol, room), NAME, NEW_URL)

    # bob was told the old URL on his first join: the change is news to him.
    await bob.leave_room_wait(room, "bob")
    await bob.join_room(room, "bob")
    assert_welcome(await told_privately(bob, room), NAME, NEW_URL)
    await alice.expect_no_message(0, from_bot(room, "chat"))


async def test_a_joiner_of_a_room_without_an_add_in_is_told_nothing(
    scene: Scene, bot: BotHandle, room: str, people: People
) -> None:
    await scene.occupy(room, "alice")
    joiners = joiners_seen_to(bot)
    bob = await people("bob")
    await told_nothing_on_joining(bot, bob, room, "bob", joiners)


# --- 4, 5: restarts and history ------------------------------------------------------------


async def test_after_a_restart_rooms_are_rejoined_and_no_one_present_is_told(
    scene: Scene, bot: BotHandle, room: str
) -> None:
    await scene.register()
    alice, bob = await scene.occupy(room, "alice", "bob")
    alice.send_groupchat(room, f'!addin attach "{NAME}"')
    for client in (alice, bob):
        await said_in_room(client, room)

    await bot.stop()
    await bot.start()
    await bot.in_room(room)

    await asyncio.gather(
        *(client.expect_no_message(1.5, anything_from_bot(room)) for client in (alice, bob))
    )
    assert attached(bot, room) == NAME
    bob.send_groupchat(room, "!addin")
    assert_welcome(await said_in_room(bob, room), NAME, URL)


async def test_a_command_in_the_room_history_is_not_executed(
    scene: Scene, bot: BotHandle, room: str, people: People
) -> None:
    await scene.register()
    (alice,) = await scene.occupy(room, "alice")
    alice.send_groupchat(room, f'!addin attach "{NAME}"')
    await said_in_room(alice, room)

    await bot.stop()
    alice.send_groupchat(room, "!addin detach")
    # The room keeps it: a newcomer asking for history gets it, with a delay stamp.
    carol = await people("carol")
    *_, history = await carol.plugin["xep_0045"].join_muc_wait(
        JID(room), "carol", maxstanzas=20, timeout=10
    )
    assert "!addin detach" in [m["body"] for m in history]

    await bot.start()
    await bot.in_room(room)
    await alice.expect_no_message(0.75, anything_from_bot(room))
    assert attached(bot, room) == NAME


async def test_delayed_messages_are_ignored_even_when_the_room_sends_history(
    scene: Scene, bot: BotHandle, room: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bot asks for no history; if a room sends it anyway, the delay stamp is enough."""
    await scene.register()
    (alice,) = await scene.occupy(room, "alice")
    alice.send_groupchat(room, f'!addin attach "{NAME}"')
    await said_in_room(alice, room)
    await scene.admin(f"leave {room}")
    await until(lambda: service(bot).app.rooms.nick_in(room) is None, "the bot leaving")
    alice.send_groupchat(room, "!addin detach")
    alice.send_groupchat(room, "!addin")

    edge = service(bot).edge

    def join_with_history(room_jid: str, nick: str) -> None:
        edge.muc.join_stanza(room_jid, nick, maxstanzas=20).send()

    monkeypatch.setattr(edge, "join", join_with_history)
    await scene.admin(f"join {room}")
    await bot.in_room(room)
    await alice.expect_no_message(0.75, anything_from_bot(room))
    assert attached(bot, room) == NAME


# --- 6: affiliation changes ----------------------------------------------------------------


@pytest.mark.parametrize("demoted_to", ["member", "none"])
async def test_a_revoked_manager_is_refused_at_once(
    scene: Scene, bot: BotHandle, room: str, prosody: Prosody, demoted_to: str
) -> None:
    await scene.register()
    await scene.register(OTHER, OTHER_URL)
    alice, carol = await scene.occupy(room, "alice", "carol")
    muc = alice.plugin["xep_0045"]

    await muc.set_affiliation(room, "admin", jid=jid(prosody, "carol"))
    carol.send_groupchat(room, f'!addin attach "{NAME}"')
    assert_link(await said_in_room(alice, room), NAME, URL)

    await muc.set_affiliation(room, demoted_to, jid=jid(prosody, "carol"))
    carol.send_groupchat(room, f"!addin attach {OTHER}")
    if XMPP == "ejabberd" and demoted_to == "none":
        # ejabberd's rooms are moderated by default, and an admin demoted to "none" is
        # made a visitor: the room itself refuses her groupchat. She asks the bot through
        # the room instead, which visitors may.
        error = await carol.next_message(
            predicate=lambda m: m["type"] == "error" and m["from"].bare == room
        )
        assert error["error"]["condition"] == "forbidden"
        carol.send_chat(f"{room}/{NICK}", f"attach {OTHER}")
    await refused_as_not_manager(carol, alice, room)
    assert attached(bot, room) == NAME


# --- 7: forced unregister ------------------------------------------------------------------


async def test_forced_unregister_tells_every_room_using_it(
    scene: Scene, bot: BotHandle, room: str
) -> None:
    await scene.register()
    second = room.replace("@", "-2@")
    (alice,) = await scene.occupy(room, "alice")
    (bob,) = await scene.occupy(second, "bob")
    for where, client in ((room, alice), (second, bob)):
        reply = await scene.admin(f'attach {where} "{NAME}"')
        assert reply == f"{where} now has the add-in “{NAME}”: {URL}"
        assert_link(await said_in_room(client, where), NAME, URL)

    reply = await scene.admin(f'unregister "{NAME}"')
    assert reply.startswith(f"“{NAME}” is used by 2 rooms"), reply
    reply = await scene.admin(f'unregister "{NAME}" force')
    told = f"Unregistered “{NAME}” and detached it from 2 rooms, which were told: "
    assert reply.startswith(told), reply

    gone = f"This room no longer has an add-in: “{NAME}” was unregistered."
    for where, client in ((room, alice), (second, bob)):
        assert (await said_in_room(client, where))["body"] == gone
    assert attached(bot, room) is None
    assert attached(bot, second) is None


# --- 8: the command line -------------------------------------------------------------------


async def test_an_attach_from_the_command_line_is_announced_by_the_running_bot(
    scene: Scene, bot: BotHandle, room: str, tmp_path: Path
) -> None:
    config = tmp_path / "addinbot.toml"  # what the bot_settings fixture wrote and loaded
    assert load_settings(config) == bot.settings
    await scene.register()
    alice, bob = await scene.occupy(room, "alice", "bob")

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "room", "attach", room, NAME, "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == f"{room} now has the add-in “{NAME}”: {URL}"

    for client in (alice, bob):
        assert_link(await said_in_room(client, room, timeout=5.0), NAME, URL)
    assert audit_rows(bot)[0].via == "cli"


async def test_no_answer_kept_from_before_a_command_line_change_is_given_after_it(
    scene: Scene, bot: BotHandle, room: str, tmp_path: Path
) -> None:
    """`list` and `!addin` are answered from what the bot keeps; a change made by another
    process drops what it kept as soon as the follower reads the change."""
    config = tmp_path / "addinbot.toml"
    await scene.register()
    (alice,) = await scene.occupy(room, "alice")
    for _ in range(2):  # the second answer is a kept one
        assert "(0 rooms)" in await scene.admin("list")
        alice.send_groupchat(room, "!addin")
        assert (await said_in_room(alice, room))["body"] == "This room has no add-in."

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "room", "attach", room, NAME, "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    assert_link(await said_in_room(alice, room), NAME, URL)  # the follower has read it

    assert "(1 room)" in await scene.admin("list")
    alice.send_groupchat(room, "!addin")
    assert_welcome(await said_in_room(alice, room), NAME, URL)


# --- 9: pools ------------------------------------------------------------------------------


async def test_an_add_in_of_another_pool_cannot_be_attached(
    prosody: Prosody, tmp_path: Path, people: People, room: str
) -> None:
    config = write_config(prosody, tmp_path)
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            f'names = ["{prosody.muc}"]', f'names = ["{prosody.muc}", "other.localhost"]'
        ),
        encoding="utf-8",
    )
    settings = load_settings(config)
    assert settings.pools.names == [prosody.muc, "other.localhost"]
    handle = BotHandle(settings)
    await handle.start()
    try:
        scene = Scene(handle, people, prosody)
        await scene.register("Elsewhere", URL, pool="other.localhost")
        await scene.register(NAME, URL, pool=prosody.muc)
        alice, bob = await scene.occupy(room, "alice", "bob")

        alice.send_groupchat(room, "!addin attach Elsewhere")
        refusal = await told_privately(alice, room)
        assert refusal["body"] == f"No add-in named “Elsewhere” in {prosody.muc}."
        await bob.expect_no_message(QUIET_S, anything_from_bot(room))

        reply = await scene.admin(f"attach {room} Elsewhere")
        assert reply == f"No add-in named “Elsewhere” in {prosody.muc}."
        assert attached(handle, room) is None

        alice.send_groupchat(room, f'!addin attach "{NAME}"')
        assert_link(await said_in_room(bob, room), NAME, URL)
    finally:
        await handle.stop()


# --- 10: kicked and banned -----------------------------------------------------------------


async def test_kicked_the_bot_rejoins_banned_it_stops_and_says_why(
    scene: Scene, bot: BotHandle, room: str, prosody: Prosody, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(membership, "REJOIN_FIRST_S", REJOIN_S)  # 2 s in production
    (alice,) = await scene.occupy(room, "alice")
    app = service(bot).app
    bot_presences: asyncio.Queue[str] = asyncio.Queue()

    def watch(presence: Presence) -> None:
        if presence["from"].bare == room and presence["from"].resource == NICK:
            bot_presences.put_nowait(presence["type"])

    alice.add_event_handler("groupchat_presence", watch)
    muc = alice.plugin["xep_0045"]

    await muc.set_role(room, NICK, "none")
    assert await asyncio.wait_for(bot_presences.get(), 5) == "unavailable"
    await until(lambda: not app.rooms.is_live(room), "the bot noticing the kick")
    assert await asyncio.wait_for(bot_presences.get(), 10) == "available"
    await bot.in_room(room, timeout=2)
    reply = await scene.admin("rooms")
    assert room in reply

    await muc.set_affiliation(room, "outcast", jid=jid(prosody, "addinbot"))
    assert await asyncio.wait_for(bot_presences.get(), 5) == "unavailable"
    await until(lambda: any(e.action == "stop" for e in audit_rows(bot)), "a stop row")
    # Twice the first rejoin delay: a retry would show here (and be refused).
    await asyncio.sleep(2 * REJOIN_S)
    stops = [e for e in audit_rows(bot) if e.action == "stop"]
    assert [(e.room, e.detail) for e in stops] == [(room, "banned")]
    assert not app.rooms.is_live(room)
    assert bot_presences.empty()
    info = addins.room_info(service(bot).store, room)
    assert (info.joined, info.stopped_reason) == (False, "banned")


# --- 11: attach by direct message from a manager -------------------------------------------


async def make_non_anonymous(client: TestClient, room: str) -> None:
    muc = client.plugin["xep_0045"]
    form = await muc.get_room_config(room)
    fields = form.get_fields()
    assert "muc#roomconfig_whois" in fields
    fields["muc#roomconfig_whois"]["value"] = "anyone"
    await muc.set_room_config(room, form)


async def test_a_manager_attaches_by_direct_message_where_the_room_shows_real_jids(
    scene: Scene, bot: BotHandle, room: str, people: People, prosody: Prosody
) -> None:
    await scene.register()
    alice = await people("alice")
    await alice.join_room(room, "alice")
    await make_non_anonymous(alice, room)
    bob = await people("bob")
    await bob.join_room(room, "bob")
    reply = await scene.admin(f"join {room}")
    assert reply.startswith("Joining")
    await bot.in_room(room)
    seen = service(bot).app.rooms.occupant(room, "alice")
    assert seen is not None
    assert seen.jid == jid(prosody, "alice")  # the room shows the bot real JIDs

    reply = await alice.ask(scene.bot_jid, f'attach {room} "{NAME}"')
    assert reply == f"{room} now has the add-in “{NAME}”: {URL}"
    for client in (alice, bob):
        assert_link(await said_in_room(client, room), NAME, URL)
    assert audit_rows(bot)[0].via == "dm"

    # bob is in the room too, but manages nothing: the real JID shows that.
    reply = await bob.ask(scene.bot_jid, f"detach {room}")
    assert reply == f"Only the owners and admins of {room} may do that."
    assert attached(bot, room) == NAME


async def test_a_manager_is_refused_by_direct_message_in_a_semi_anonymous_room(
    scene: Scene, bot: BotHandle, room: str
) -> None:
    await scene.register()
    (alice,) = await scene.occupy(room, "alice")
    before = len(audit_rows(bot))

    reply = await alice.ask(scene.bot_jid, f'attach {room} "{NAME}"')
    assert "does not show the bot its occupants' real addresses" in reply
    assert "Run the command in the room" in reply
    await alice.expect_no_message(QUIET_S, anything_from_bot(room))
    assert attached(bot, room) is None
    assert len(audit_rows(bot)) == before


async def test_a_manager_attaches_by_direct_message_where_the_bot_is_a_moderator(
    scene: Scene, bot: BotHandle, room: str
) -> None:
    """Semi-anonymous, but the room shows moderators real JIDs: made an admin, the bot sees."""
    await scene.register()
    alice, bob = await scene.occupy(room, "alice", "bob")
    await alice.plugin["xep_0045"].set_affiliation(room, "admin", jid=scene.bot_jid)
    await until(lambda: service(bot).app.rooms.rooms[room].shows_jids, "the bot seeing JIDs")

    reply = await alice.ask(scene.bot_jid, f'attach {room} "{NAME}"')
    assert reply == f"{room} now has the add-in “{NAME}”: {URL}"
    assert_link(await said_in_room(bob, room), NAME, URL)
    reply = await bob.ask(scene.bot_jid, f"detach {room}")
    assert reply == f"Only the owners and admins of {room} may do that."
    assert attached(bot, room) == NAME


async def test_a_room_made_non_anonymous_while_the_bot_is_in_it_is_followed(
    scene: Scene, bot: BotHandle, room: str
) -> None:
    await scene.register()
    (alice,) = await scene.occupy(room, "alice")
    await make_non_anonymous(alice, room)
    # The bot joins again to see the room's occupants as it now shows them: wait for that,
    # not for a while.
    alice_jid = jid(scene.prosody, "alice")
    rooms = service(bot).app.rooms

    def sees_alice() -> bool:
        seen = rooms.occupant(room, "alice")
        return rooms.is_live(room) and seen is not None and seen.jid == alice_jid

    await until(sees_alice, "the bot seeing alice's real JID")
    reply = await alice.ask(scene.bot_jid, f'attach {room} "{NAME}"')
    assert reply == f"{room} now has the add-in “{NAME}”: {URL}"
    # Refreshing the room's occupants made no one a newcomer: alice is told nothing privately.
    await alice.expect_no_message(
        0.5, predicate=lambda m: m["type"] == "chat" and m["from"].bare == room
    )


# --- more of the contract: nickname changes, detach, admins in rooms ------------------------


async def test_a_nickname_change_is_not_an_arrival(
    scene: Scene, bot: BotHandle, room: str
) -> None:
    await scene.register()
    alice, bob = await scene.occupy(room, "alice", "bob")
    alice.send_groupchat(room, f'!addin attach "{NAME}"')
    assert_link(await said_in_room(bob, room), NAME, URL)  # bob was never told privately

    new_nick = await bob.plugin["xep_0045"].set_self_nick(JID(room), "bobby", timeout=5)
    assert new_nick == "bobby"
    await bob.expect_no_message(0.75, anything_from_bot(room))


async def test_a_manager_detaches_in_the_room_and_the_room_is_told(
    scene: Scene, bot: BotHandle, room: str, people: People
) -> None:
    await scene.register()
    alice, bob = await scene.occupy(room, "alice", "bob")
    alice.send_groupchat(room, f'!addin attach "{NAME}"')
    for client in (alice, bob):
        assert_link(await said_in_room(client, room), NAME, URL)

    alice.send_groupchat(room, "!addin detach")
    for client in (alice, bob):
        assert (await said_in_room(client, room))["body"] == "This room no longer has an add-in."
    assert attached(bot, room) is None

    joiners = joiners_seen_to(bot)
    carol = await people("carol")
    await told_nothing_on_joining(bot, carol, room, "carol", joiners)


@pytest.mark.parametrize("non_anonymous", [False, True])
async def test_an_addinbot_admin_counts_in_a_room_only_where_it_shows_real_jids(
    scene: Scene, bot: BotHandle, room: str, people: People, non_anonymous: bool
) -> None:
    await scene.register()
    alice = await people("alice")
    await alice.join_room(room, "alice")
    if non_anonymous:
        await make_non_anonymous(alice, room)
    admin = await scene.admin_client()
    await admin.join_room(room, "admin")  # a plain participant of the room
    reply = await scene.admin(f"join {room}")
    assert reply.startswith("Joining")
    await bot.in_room(room)

    admin.send_groupchat(room, f'!addin attach "{NAME}"')
    if non_anonymous:
        assert_link(await said_in_room(alice, room), NAME, URL)
        assert attached(bot, room) == NAME
    else:
        await refused_as_not_manager(admin, alice, room)
        assert attached(bot, room) is None

