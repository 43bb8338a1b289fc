"""Staying connected, against a Prosody of its own with stream management (mod_smacks) and
the admin shell: a dropped connection is resumed without rejoining or re-announcing, a
stream that cannot be resumed rejoins its rooms, a server that stops answering pings is
left and the stream resumed, and a room that forgot the bot without a word is rejoined.

The self-ping verdicts (XEP-0410) are also checked as plain values."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from slixmpp import JID, Message

from bot import addins, membership
from bot.announce import attached_sentence, welcome_sentence
from bot.xmpp.liveness import SelfPing, self_ping_verdict
from tests.harness.prosody import PROSODYCTL_BIN, Prosody
from tests.harness.xmpp_client import TestClient
from tests.integration.conftest import PASSWORD, PEOPLE, BotHandle, jid

NICK = "AddinBot"
NAME = "Stock Ticker"
URL = "https://stocks.example.org/panel"
QUIET_S = 0.5
SMACKS = """
VirtualHost "localhost" {
    modules_enabled = { "smacks"; "admin_shell" };
}
"""

People = Callable[[str], Awaitable[TestClient]]
xmpp = pytest.mark.xmpp


# --- XEP-0410 verdicts, as plain values ----------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "timed_out", "verdict"),
    [
        (None, False, SelfPing.JOINED),  # the room answered for the bot's own occupant
        ("service-unavailable", False, SelfPing.JOINED),  # passed on to a client that
        ("feature-not-implemented", False, SelfPing.JOINED),  # does not answer pings
        ("item-not-found", False, SelfPing.JOINED),  # the nickname is changing
        ("not-acceptable", False, SelfPing.GONE),  # "you are not in this room"
        ("not-allowed", False, SelfPing.GONE),
        ("undefined-condition", False, SelfPing.GONE),
        ("remote-server-not-found", False, SelfPing.UNKNOWN),  # the room's server is away:
        ("remote-server-timeout", False, SelfPing.UNKNOWN),  # ask again later
        (None, True, SelfPing.UNKNOWN),  # no answer at all
    ],
)
def test_self_ping_verdicts(condition: str | None, timed_out: bool, verdict: SelfPing) -> None:
    assert self_ping_verdict(condition, timed_out=timed_out) is verdict


# --- against Prosody with stream management ------------------------------------------------


@pytest.fixture(scope="module")
def prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prosody]:
    """This module's own server: mod_smacks (XEP-0198) and the admin shell loaded."""
    server = Prosody(tmp_path_factory.mktemp("prosody-smacks"), extra_config=SMACKS)
    server.start()
    for user in PEOPLE:
        server.register(user, PASSWORD)
    yield server
    server.stop()


def service(handle: BotHandle):  # bot.runner.Service
    assert handle.service is not None
    return handle.service


def from_bot(room: str) -> Callable[[Message], bool]:
    return lambda m: m["from"].bare == room and m["from"].resource == NICK and bool(m["body"])


def watch_bot(client: TestClient, room: str) -> asyncio.Queue[str]:
    """The bot's presences in `room` as `client` sees them."""
    seen: asyncio.Queue[str] = asyncio.Queue()

    def on_presence(presence) -> None:  # a slixmpp Presence
        if presence["from"] == JID(f"{room}/{NICK}"):
            seen.put_nowait(presence["type"])

    client.add_event_handler("groupchat_presence", on_presence)
    return seen


def count_events(handle: BotHandle, *names: str) -> dict[str, int]:
    counts = dict.fromkeys(names, 0)
    for name in names:
        def bump(_event: object, name: str = name) -> None:
            counts[name] += 1

        service(handle).edge.add_event_handler(name, bump)
    return counts


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> float:
    """Wait for `condition`; return how long it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not condition():
        assert loop.time() - started < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)
    return loop.time() - started


async def served_room_with_addin(
    handle: BotHandle, people: People, prosody: Prosody, room: str
) -> TestClient:
    """alice owns `room`; the bot serves it and has announced an add-in there."""
    admin = await people("admin")
    bot_jid = jid(prosody, "addinbot")
    assert (await admin.ask(bot_jid, f'register "{NAME}" {URL}')).startswith("Registered")
    alice = await people("alice")
    await alice.join_room(room, "alice")
    assert (await admin.ask(bot_jid, f"join {room}")).startswith("Joining")
    await handle.in_room(room)
    assert (await admin.ask(bot_jid, f'attach {room} "{NAME}"')).startswith(room)
    told = await alice.next_message(10, from_bot(room))
    assert told["body"] == attached_sentence(NAME, URL)
    return alice


@xmpp
async def test_stream_management_is_on(bot: BotHandle) -> None:
    edge = service(bot).edge
    await until(lambda: bool(edge.plugin["xep_0198"].sm_id), "stream management enabled")
    assert not edge.end_session_on_disconnect


@xmpp
async def test_a_dropped_connection_is_resumed_without_rejoining_or_announcing(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    alice = await served_room_with_addin(bot, people, prosody, room)
    edge, app = service(bot).edge, service(bot).app
    sm_id = edge.plugin["xep_0198"].sm_id
    assert sm_id
    seen = watch_bot(alice, room)
    events = count_events(bot, "session_start", "session_resumed", "session_end")
    audit_before = len(addins.audit(service(bot).store, limit=1000))
    edge._backoff = 2.0  # the first reconnect attempt: 1 s in production; time for bob
    bob = await people("bob")  # connected beforehand: only his join has to fit in the gap

    # Cut the TCP connection; the stream is not closed, so the server keeps the session.
    cut = time.monotonic()
    edge.drop_connection()
    await until(lambda: not edge.online.is_set(), "the bot noticing")
    assert app.rooms.is_live(room), "a suspended stream keeps its rooms"
    # While the bot is away, bob joins: the server keeps his presence for the bot.
    await bob.join_room(room, "bob")
    assert events["session_resumed"] == 0, "too slow: bob joined after the resumption"
    await until(lambda: events["session_resumed"] == 1, "the stream resumed")
    resumed_s = time.monotonic() - cut

    assert events == {"session_start": 0, "session_resumed": 1, "session_end": 0}
    assert edge.plugin["xep_0198"].sm_id == sm_id
    # bob, who joined while the stream was away, is told once, as any joiner.
    told = await bob.next_message(10, from_bot(room))
    assert (told["type"], told["body"]) == ("chat", welcome_sentence(NAME, URL))
    await asyncio.sleep(QUIET_S)
    assert seen.empty(), "the bot left or rejoined the room"
    await alice.expect_no_message(0, from_bot(room))  # nobody present is re-announced
    await bob.expect_no_message(0, from_bot(room))
    assert app.rooms.is_live(room)
    assert len(addins.audit(service(bot).store, limit=1000)) == audit_before
    print(f"\nresumed {resumed_s:.2f} s after the cut (first reconnect attempt after 2 s)")


@xmpp
async def test_a_stream_that_cannot_be_resumed_rejoins_its_rooms(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    alice = await served_room_with_addin(bot, people, prosody, room)
    # Configured, so Prosody saves it now: a room kept only by default dies with the server,
    # and the bot does not create it again.
    muc = alice.plugin["xep_0045"]
    form = await muc.get_room_config(room)
    form.get_fields()["muc#roomconfig_persistentroom"]["value"] = True
    await muc.set_room_config(room, form)
    edge, app = service(bot).edge, service(bot).app
    events = count_events(bot, "session_start", "session_resumed", "session_end")
    await alice.stop()

    # The server dies at once and comes back without its sessions: resumption fails.
    prosody.kill()
    prosody.start()
    await until(lambda: events["session_start"] == 1, "a new session", timeout=20)
    assert events["session_resumed"] == 0
    assert events["session_end"] == 1  # the failed resumption ended the old one
    await bot.in_room(room, timeout=10)
    assert edge.online.is_set()
    assert app.rooms.is_live(room)

    # The room is served as before: a joiner is told.
    carol = await people("carol")
    await carol.join_room(room, "carol")
    told = await carol.next_message(10, from_bot(room))
    assert told["body"] == welcome_sentence(NAME, URL)


@xmpp
async def test_a_server_that_stops_answering_is_left_and_the_stream_resumed(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    alice = await served_room_with_addin(bot, people, prosody, room)
    edge, app = service(bot).edge, service(bot).app
    events = count_events(bot, "session_start", "session_resumed", "killed")
    seen = watch_bot(alice, room)
    edge.liveness.server_every_s = 0.3
    edge.liveness.server_timeout_s = 0.5
    edge.liveness.start()
    await asyncio.sleep(0.6)  # pings answered: nothing happens
    assert events == {"session_start": 0, "session_resumed": 0, "killed": 0}

    assert prosody.pid is not None
    frozen = time.monotonic()
    os.kill(prosody.pid, signal.SIGSTOP)
    try:
        noticed_s = await until(lambda: events["killed"] == 1, "the keepalive dropping it")
    finally:
        os.kill(prosody.pid, signal.SIGCONT)
    await until(lambda: events["session_resumed"] == 1, "the stream resumed", timeout=20)
    resumed_s = time.monotonic() - frozen
    assert events["session_start"] == 0
    assert app.rooms.is_live(room)
    await asyncio.sleep(QUIET_S)
    assert seen.empty(), "the bot left or rejoined the room"
    print(f"\nping unanswered: dropped after {noticed_s:.2f} s, resumed {resumed_s:.2f} s "
          "after the freeze")


@xmpp
async def test_a_room_that_silently_dropped_the_bot_is_rejoined(
    bot: BotHandle, people: People, prosody: Prosody, room: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(membership, "REJOIN_FIRST_S", 0.2)  # 2 s in production
    alice = await served_room_with_addin(bot, people, prosody, room)
    edge, app = service(bot).edge, service(bot).app
    seen = watch_bot(alice, room)

    # Prosody forgets the bot's occupant and tells no one: the state a MUC service is in
    # after a restart without its occupants, or a lost server-to-server link.
    await asyncio.to_thread(forget, prosody, room, NICK)
    await asyncio.sleep(QUIET_S)
    assert seen.empty(), "the room told someone"
    assert app.rooms.is_live(room), "the bot cannot know yet"

    dropped = time.monotonic()
    edge.liveness.room_every_s = 0.3
    edge.liveness.timeout_s = 2.0  # a ping lost on the way is asked again soon (30 s in production)
    edge.liveness.start()
    assert await asyncio.wait_for(seen.get(), 10) == "available"  # joined anew
    rejoined_s = time.monotonic() - dropped
    await bot.in_room(room)
    # Those present when the bot rejoins are not told again.
    await alice.expect_no_message(QUIET_S, from_bot(room))
    # And the room keeps it now: the next self-pings find it there.
    await asyncio.sleep(1.0)
    assert seen.empty()
    assert app.rooms.is_live(room)
    print(f"\nsilently dropped: back in the room {rejoined_s:.2f} s after self-pings began")


def forget(prosody: Prosody, room: str, nick: str) -> None:
    """Make the MUC service drop an occupant without a word, through the admin shell."""
    lua = (
        f'> local r = prosody.hosts["{prosody.muc}"].modules.muc.get_room_from_jid("{room}"); '
        f'local o = r._occupants["{room}/{nick}"]; '
        "for j in o:each_session() do r._jid_nick[j] = nil end; "
        f'r._occupants["{room}/{nick}"] = nil; return "forgotten"'
    )
    done = subprocess.run(
        [PROSODYCTL_BIN, "--config", str(prosody.config_path), "shell", lua],
        capture_output=True, text=True, timeout=10, check=False, cwd=Path(prosody.workdir),
    )
    assert "forgotten" in done.stdout, (done.returncode, done.stdout, done.stderr)
