"""Several `addinbot run` on one PostgreSQL database (issue 15, items 1-2), and SQLite's
refusal of a second one (item 3), over a real Prosody with the bots as child processes.

Which rooms each process serves is read from its log ("joined ROOM", "left ROOM (no
longer leased …)", "no longer serving …"); who answers what from the messages the test
clients receive, each from one process's own resource. The leases are shortened through
the config (lease_s 4, renew_s 1), never by sleeping.

Two ways a process goes: SIGKILL (the server ends its session and tells the bot's other
sessions, which take its rooms over at once) and SIGSTOP (its session stays up, doing
nothing: its leases run out, and someone joins one of its rooms in that gap).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError
from sqlalchemy import make_url

from bot.commands.text import attached_sentence, welcome_sentence
from tests.harness.prosody import Prosody
from tests.harness.tcp_proxy import TcpProxy
from tests.harness.xmpp_client import TestClient, sent_by
from tests.integration.conftest import PG_URL, create_room, jid, write_config
from tests.integration.test_adhoc import execute, fields_of, notes, offered, submit
from tests.integration.test_faults import ROOT, BotProcess, until
from tests.integration.test_invitation_limits import own_room

LEASE_S, RENEW_S = 4, 1
TAKEOVER_MOST_S = 15.0


def shared_config(server: Prosody, folder: Path, rooms: list[str]) -> Path:
    path = write_config(server, folder)
    with path.open("a", encoding="utf-8") as config:
        config.write(
            f"\n[rooms]\nautojoin = {json.dumps(rooms)}\n\n"
            f"[cluster]\nenabled = true\nlease_s = {LEASE_S}\nrenew_s = {RENEW_S}\n"
        )
    return path


def serving(process: BotProcess) -> set[str]:
    """The rooms a process is in now, by its log."""
    rooms: set[str] = set()
    for line in process.text().splitlines():
        if found := re.search(r" joined (\S+@\S+)$", line):
            rooms.add(found[1])
        elif found := re.search(r" (?:left|out of) (\S+@\S+) \(", line):
            rooms.discard(found[1])
        elif " no longer serving " in line:
            rooms.clear()
    return rooms


def holds_desk(process: BotProcess) -> bool:
    desk = False
    for line in process.text().splitlines():
        if " holding the desk" in line:
            desk = " no longer holding the desk" not in line
        elif "nor holding the desk" in line:
            desk = False
    return desk


def resource(process: BotProcess) -> str:
    found = re.search(r"connected as (\S+)", process.text())
    assert found, process.text()
    return found[1]


def each_room_once(processes: list[BotProcess], rooms: list[str]) -> bool:
    held = [serving(process) for process in processes]
    counts = Counter(room for rooms_of in held for room in rooms_of)
    return set(counts) == set(rooms) and set(counts.values()) == {1} and all(held)


pytestmark = [pytest.mark.xmpp, pytest.mark.postgres, pytest.mark.postgres_only]


async def test_three_processes_share_the_rooms_and_take_over_from_killed_and_frozen_ones(
    prosody: Prosody, tmp_path: Path, people,
) -> None:
    rooms = sorted([await create_room(prosody, f"shared{uuid.uuid4().hex[:8]}@{prosody.muc}")
                    for _ in range(4)])
    config = shared_config(prosody, tmp_path, rooms[:3])  # the fourth is joined by `join`
    bot_jid = jid(prosody, "addinbot")
    processes = [BotProcess(config, tmp_path / f"bot{i}.log") for i in range(3)]
    try:
        for process in processes:
            await process.start()
        await until(lambda: each_room_once(processes, rooms[:3]), "each room served once", 30)
        await until(lambda: sum(map(holds_desk, processes)) == 1, "one desk", 10)
        assert len({resource(p) for p in processes}) == 3  # a resource each
        desk = next(p for p in processes if holds_desk(p))

        alice, admin, bob = await people("alice"), await people("admin"), await people("bob")
        # Direct messages to the bare JID: answered once, by the desk; a room joined there
        # is served by one process.
        reply = await admin.ask(bot_jid, f"join {rooms[3]}", 10)
        assert reply == f"Joining {rooms[3]}; the bot will rejoin it after restarts."
        await until(lambda: each_room_once(processes, rooms), "the joined room served", 10)
        for room in rooms:
            await alice.join_room(room, "alice")
        url = "https://stocks.example.org/panel"
        admin.send_chat(bot_jid, f"register Stocks {url}")
        answer = await admin.wait_for(sent_by(bot_jid), 10)
        assert str(answer["from"]) == resource(desk)
        for room in rooms:  # each room's holder announces it, once
            reply = await admin.ask(bot_jid, f"attach {room} Stocks")
            assert reply.startswith(f"{room} now has the add-in “Stocks”"), reply
        said = attached_sentence("Stocks", url)
        for room in rooms:
            await alice.wait_for(lambda m, r=room: m["from"].bare == r and m["body"] == said, 10)
        # A message to a process's own resource is answered there, desk or not.
        other = next(p for p in processes if p is not desk)
        admin.send_chat(resource(other), "list")
        reply = await admin.wait_for(sent_by(resource(other)), 10)
        assert "Stocks" in reply["body"]
        # Joiners told once, by whichever process serves the room.
        welcome = welcome_sentence("Stocks", url)
        for room in rooms:
            await bob.join_room(room, "bob")
            await bob.wait_for(lambda m, r=room: m["from"] == JID(f"{r}/AddinBot")
                               and m["body"] == welcome, 10)

        # SIGKILL the desk holder: the server ends its session, which takes it out of
        # every room and tells the bot's other sessions; they take its rooms over at once.
        victim = desk
        lost = sorted(serving(victim))
        survivors = [p for p in processes if p is not victim]
        killed_at = time.monotonic()
        victim.kill()
        await until(lambda: each_room_once(survivors, rooms), "the rooms taken over",
                    TAKEOVER_MOST_S + 5)
        took = time.monotonic() - killed_at
        print(f"\nSIGKILL -> {len(lost)} room(s) served again by the others in {took:.2f} s")
        assert took <= TAKEOVER_MOST_S
        await until(lambda: sum(map(holds_desk, survivors)) == 1, "a new desk", 10)

        # Freeze the other one (SIGSTOP: its session stays up, it does nothing): its leases
        # run out and the new desk takes its rooms over. Someone joins in the gap.
        last = next(p for p in survivors if holds_desk(p))
        frozen = next(p for p in survivors if p is not last)
        stranded = sorted(serving(frozen))
        frozen_at = time.monotonic()
        assert frozen.process is not None
        frozen.process.send_signal(signal.SIGSTOP)
        carol = await people("carol")
        await carol.join_room(stranded[0], "carol")
        assert stranded[0] not in serving(last), "no gap to join in"
        await until(lambda: each_room_once([last], rooms), "the frozen one's rooms taken over",
                    TAKEOVER_MOST_S + 5)
        took_frozen = time.monotonic() - frozen_at
        print(f"SIGSTOP -> {len(stranded)} room(s) served again in {took_frozen:.2f} s")
        assert took_frozen <= TAKEOVER_MOST_S
        await carol.wait_for(lambda m: m["from"] == JID(f"{stranded[0]}/AddinBot")
                             and m["body"] == welcome, 10)
        frozen.kill()
        survivors = [last]
        lost = stranded
        # The last one holds the desk; a change from the command line is announced once, by
        # the room's new holder.
        await until(lambda: holds_desk(last), "the desk", 10)
        reply = await admin.ask(bot_jid, "register Other https://other.example.org/", 10)
        assert reply.startswith("Registered “Other”"), reply
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "bot", "room", "attach", lost[0], "Other", "--config",
             str(config)], capture_output=True, text=True, cwd=ROOT, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        said_other = attached_sentence("Other", "https://other.example.org/")
        await alice.wait_for(lambda m: m["from"].bare == lost[0] and m["body"] == said_other, 10)
        mallory = await people("mallory")  # an ordinary joiner after the take-over
        await mallory.join_room(lost[0], "mallory")
        other_welcome = welcome_sentence("Other", "https://other.example.org/")
        await mallory.wait_for(lambda m: m["from"] == JID(f"{lost[0]}/AddinBot")
                               and m["body"] == other_welcome, 10)
        # A last round trip through every survivor, then count everything received.
        for process in survivors:
            admin.send_chat(resource(process), "help")
            await admin.wait_for(sent_by(resource(process)), 10)
        clients = {"alice": alice, "bob": bob, "carol": carol, "mallory": mallory}
        got = {name: [m for m in client.drain() if m["body"]] for name, client in clients.items()}
        welcomes = Counter(
            (name, m["from"].bare) for name, messages in got.items() for m in messages
            if m["type"] == "chat" and m["body"].startswith("This room's add-in is")
        )
        told = len(rooms) + 2  # bob in each room, carol and mallory: taken above, once each
        print(f"joiners told: {told}, told again: {sum(welcomes.values())} {dict(welcomes)}")
        assert not welcomes, "someone told twice (or alice, who saw the announcement, told)"
        announcements = Counter(m["from"].bare for m in got["alice"] if m["type"] == "groupchat")
        assert not announcements, f"an announcement said twice: {announcements}"
        extra = [m["body"] for m in admin.drain() if m["body"]]
        assert not extra, f"a direct message answered twice: {extra}"
    finally:
        for process in processes:
            process.kill()


def serving_changes(process: BotProcess, since: int = 0) -> int:
    """How many times the process's share changed (its "serving N room(s)" lines), in its
    log from offset `since`."""
    return process.text()[since:].count(" process(es) share them ")


def behind_a_relay(config: Path, tmp_path: Path, way: str, relayed: str) -> list[BotProcess]:
    """Two processes on `config` ("steady" and "cut"); the cut one's config has `way` (its
    way to the XMPP server or to PostgreSQL) replaced by `relayed`, a relay's."""
    text = config.read_text(encoding="utf-8")
    assert way in text
    folder = tmp_path / "cut"
    folder.mkdir()
    cut_config = folder / "addinbot.toml"
    cut_config.write_text(text.replace(way, relayed), encoding="utf-8")
    return [BotProcess(config, tmp_path / "steady.log"),
            BotProcess(cut_config, tmp_path / "cut.log")]


async def two_each_with_stocks(
    prosody: Prosody, people, processes: list[BotProcess], rooms: list[str]
) -> tuple[TestClient, TestClient, str]:
    """Start both; once each serves two rooms, every room has the add-in “Stocks” and bob
    has been welcomed in each, once. (admin, bob, the welcome)."""
    for process in processes:
        await process.start()
    await until(lambda: each_room_once(processes, rooms) and len(serving(processes[1])) == 2,
                "each room served once, two each", 30)
    admin, bob = await people("admin"), await people("bob")
    url = "https://stocks.example.org/panel"
    reply = await admin.ask(jid(prosody, "addinbot"), f"register Stocks {url}", 10)
    assert reply.startswith("Registered “Stocks”"), reply
    for room in rooms:
        reply = await admin.ask(jid(prosody, "addinbot"), f"attach {room} Stocks", 10)
        assert reply.startswith(f"{room} now has the add-in “Stocks”"), reply
    welcome = welcome_sentence("Stocks", url)
    for room in rooms:  # told once, before the cut
        await bob.join_room(room, "bob")
        await bob.wait_for(lambda m, r=room: m["from"] == JID(f"{r}/AddinBot")
                           and m["body"] == welcome, 10)
    return admin, bob, welcome


async def told_once(room: str, client: TestClient, welcome: str) -> None:
    await client.wait_for(lambda m: m["from"] == JID(f"{room}/AddinBot")
                          and m["body"] == welcome, 10)


async def nobody_told_twice(
    admin: TestClient, processes: list[BotProcess], welcome: str, **joiners: TestClient
) -> None:
    """After a round trip through each process's own resource: no joiner got the welcome
    again, and no direct message was answered twice."""
    for process in processes:
        admin.send_chat(resource(process), "help")
        await admin.wait_for(sent_by(resource(process)), 10)
    got = {name: [m for m in client.drain() if m["body"]] for name, client in joiners.items()}
    again = Counter((name, m["from"].bare) for name, messages in got.items()
                    for m in messages if m["type"] == "chat" and m["body"] == welcome)
    assert not again, f"someone told twice: {dict(again)}"
    extra = [m["body"] for m in admin.drain() if m["body"]]
    assert not extra, f"a direct message answered twice: {extra}"


async def test_a_process_cut_off_from_postgresql_gives_its_rooms_up_and_then_takes_a_share(
    prosody: Prosody, tmp_path: Path, people,
) -> None:
    """A network cut between one process and PostgreSQL (its connections stay open, nothing
    passes: a relay holds it all): its watchdog stops it serving before its leases run out,
    the other process takes its rooms over within 15 s, and a joiner in the gap is told once.
    When the cut heals, it takes a fair share again, in one step each way (no flapping), and
    nobody is told twice."""
    rooms = sorted([await create_room(prosody, f"cut{uuid.uuid4().hex[:8]}@{prosody.muc}")
                    for _ in range(4)])
    config = shared_config(prosody, tmp_path, rooms)
    pg = make_url(PG_URL)
    assert pg.host is not None
    proxy = TcpProxy(pg.host, pg.port or 5432)
    port = await proxy.start()
    processes = behind_a_relay(config, tmp_path, f"@{pg.host}:{pg.port or 5432}/",
                               f"@127.0.0.1:{port}/")
    steady, cut = processes
    try:
        admin, bob, welcome = await two_each_with_stocks(prosody, people, processes, rooms)

        stranded = sorted(serving(cut))
        cut_at = time.monotonic()
        proxy.freeze()
        await until(lambda: " no longer serving " in cut.text(), "the cut one to stop", 15)
        carol = await people("carol")  # joins while nobody may be serving the room
        await carol.join_room(stranded[0], "carol")
        await until(lambda: each_room_once([steady], rooms), "its rooms taken over",
                    TAKEOVER_MOST_S + 5)
        took = time.monotonic() - cut_at
        print(f"\ncut from PostgreSQL -> {len(stranded)} room(s) served again in {took:.2f} s")
        assert took <= TAKEOVER_MOST_S
        assert not serving(cut)  # never two at once: it had stopped before
        await told_once(stranded[0], carol, welcome)

        healed = (len(steady.text()), len(cut.text()))
        proxy.thaw()
        await until(lambda: each_room_once(processes, rooms) and len(serving(cut)) == 2,
                    "a fair share again", 30)
        await nobody_told_twice(admin, processes, welcome, bob=bob, carol=carol)
        assert serving_changes(steady, healed[0]) == 1, steady.text()[healed[0]:]
        assert serving_changes(cut, healed[1]) == 1, cut.text()[healed[1]:]
    finally:
        for process in processes:
            process.kill()
        await proxy.stop()


async def test_a_process_cut_off_from_the_xmpp_server_gives_its_rooms_up_within_seconds(
    prosody: Prosody, tmp_path: Path, people,
) -> None:
    """A network cut between one process and the XMPP server (nothing passes either way;
    the server still counts its session in and its occupants present): it finds the server
    silent (its keepalive, at the lease renewal period), gives its rooms up, and the other
    process serves them within 15 s; a joiner meanwhile is told once. When the cut heals
    it comes back and takes a share again; nobody is told twice."""
    rooms = sorted([await create_room(prosody, f"xcut{uuid.uuid4().hex[:8]}@{prosody.muc}")
                    for _ in range(4)])
    config = shared_config(prosody, tmp_path, rooms)
    proxy = TcpProxy("127.0.0.1", prosody.port)
    port = await proxy.start()
    processes = behind_a_relay(config, tmp_path, f"\nport = {prosody.port}\n",
                               f"\nport = {port}\n")
    steady, cut = processes
    try:
        admin, bob, welcome = await two_each_with_stocks(prosody, people, processes, rooms)

        stranded = sorted(serving(cut))
        cut_at = time.monotonic()
        proxy.freeze()
        carol = await people("carol")  # joins while the cut one may be serving no more
        await carol.join_room(stranded[0], "carol")
        await until(lambda: each_room_once([steady], rooms), "its rooms taken over",
                    TAKEOVER_MOST_S + 5)
        took = time.monotonic() - cut_at
        print(f"\ncut from the XMPP server -> {len(stranded)} room(s) served again in "
              f"{took:.2f} s")
        assert took <= TAKEOVER_MOST_S
        assert " no longer serving " in cut.text()
        await told_once(stranded[0], carol, welcome)

        proxy.thaw()
        await until(lambda: each_room_once(processes, rooms) and len(serving(cut)) == 2,
                    "a fair share again", 40)
        mallory = await people("mallory")  # a joiner of a room it serves again: told once
        back = sorted(serving(cut))[0]
        await mallory.join_room(back, "mallory")
        await told_once(back, mallory, welcome)
        await nobody_told_twice(admin, processes, welcome, bob=bob, carol=carol,
                                mallory=mallory)
    finally:
        for process in processes:
            process.kill()
        await proxy.stop()


STOCKS = "https://stocks.example.org/panel"


@contextlib.asynccontextmanager
async def two_processes(
    prosody: Prosody, tmp_path: Path, people, owner: TestClient,
) -> AsyncIterator[tuple[Path, list[BotProcess], BotProcess, BotProcess]]:
    """Two processes serving a room each, both rooms owned by `owner` (in them, the bot seeing
    real JIDs), and an add-in "Stocks" registered: (config, processes, desk, the other)."""
    rooms = sorted(f"two{uuid.uuid4().hex[:8]}@{prosody.muc}" for _ in range(2))
    for room in rooms:
        await own_room(owner, room, owner.boundjid.user)
    config = shared_config(prosody, tmp_path, rooms)
    processes = [BotProcess(config, tmp_path / f"bot{i}.log") for i in range(2)]
    try:
        for process in processes:
            await process.start()
        await until(lambda: each_room_once(processes, rooms) and sum(map(holds_desk, processes))
                    == 1, "a room each, one desk", 30)
        desk = next(p for p in processes if holds_desk(p))
        other = next(p for p in processes if p is not desk)
        admin = await people("admin")
        reply = await admin.ask(jid(prosody, "addinbot"), f"register Stocks {STOCKS}", 10)
        assert reply.startswith("Registered “Stocks”"), reply
        yield config, processes, desk, other
    finally:
        for process in processes:
            process.kill()


async def test_a_managers_direct_command_about_a_room_another_process_serves_is_answered_there(
    prosody: Prosody, tmp_path: Path, people,
) -> None:
    """Only the process serving a room sees who is in it. A manager's direct message to the
    bot's bare JID reaches the desk; about a room another process serves, the desk hands it
    over (a headline from the bot's own account to that process's resource), and that one
    answers, once. The same hand-over forged by anyone else is not acted on."""
    carol = await people("carol")
    bot_jid = jid(prosody, "addinbot")
    async with two_processes(prosody, tmp_path, people, carol) as (config, processes, _, other):
        [room] = serving(other)
        url = STOCKS

        mallory = await people("mallory")  # forges a hand-over to the serving process
        forged = mallory.make_message(mto=JID(resource(other)), mtype="headline")
        handed = ET.SubElement(forged.xml, "{urn:addinbot:relay:0}relay",
                               {"from": f"carol@{prosody.domain}"})
        handed.text = f"attach {room} Stocks"
        forged.send()

        carol.send_chat(bot_jid, f"attach {room} Stocks")
        answer = await carol.wait_for(lambda m: m["from"].bare == bot_jid and m["body"], 10)
        assert str(answer["from"]) == resource(other)
        assert answer["body"].startswith(f"{room} now has the add-in “Stocks”"), answer["body"]
        said = attached_sentence("Stocks", url)
        await carol.wait_for(lambda m: m["from"].bare == room and m["body"] == said, 10)
        # A last round trip through each process, then count everything carol received.
        for process in processes:
            carol.send_chat(resource(process), "help")
            await carol.wait_for(sent_by(resource(process)), 10)
        got = [m for m in carol.drain() if m["body"]]
        assert not [m["body"] for m in got if m["type"] == "chat"], "answered twice"
        assert not [m["body"] for m in got if m["type"] == "groupchat" and m["body"] == said]
        assert [e for e in audit_actions(config) if e == "attach"] == ["attach"]  # not forged


async def test_a_managers_form_about_a_room_another_process_serves_is_offered_and_runs(
    prosody: Prosody, tmp_path: Path, people,
) -> None:
    """A form is answered by the process asked (an IQ's answer comes from the full JID
    asked), but only the process serving a room sees who manages it: the one asked asks the
    others (an IQ to each of their resources, from the bot's own account), which vouch for
    the rooms they serve. Nobody else's question is answered."""
    carol = await people("carol")
    async with two_processes(prosody, tmp_path, people, carol) as (config, processes, desk, other):
        [far] = serving(other)
        rooms = sorted(serving(desk) | {far})
        asked = JID(resource(desk))
        url = STOCKS

        # Help by direct message (the desk answers) names her rooms, both processes' too.
        helped = await carol.ask(jid(prosody, "addinbot"), "help", 10)
        assert f"In your rooms ({rooms[0]}, {rooms[1]}), type:" in helped, helped

        carol.register_plugin("xep_0050")
        assert await offered(carol, asked) == ["attach", "detach", "list", "managers"]
        first = await execute(carol, asked, "attach")
        assert [o["value"] for o in fields_of(first)["room"]["options"]] == rooms
        done = await submit(carol, asked, first, {"room": far, "name": "Stocks"})
        assert done["command"]["status"] == "completed", done
        assert notes(done)[0][1].startswith(f"{far} now has the add-in “Stocks”"), notes(done)
        said = attached_sentence("Stocks", url)
        await carol.wait_for(lambda m: m["from"].bare == far and m["body"] == said, 10)

        bob = await people("bob")  # manages nothing: offered nothing more, refused a form
        bob.register_plugin("xep_0050")
        assert await offered(bob, asked) == ["list"]
        with pytest.raises(IqError) as refused:
            await execute(bob, asked, "attach")
        assert refused.value.condition == "forbidden"
        mallory = await people("mallory")  # asks a process itself which rooms carol manages
        question = mallory.make_iq_get(ito=JID(resource(other)))
        question.xml.append(ET.Element("{urn:addinbot:relay:0}managed",
                                       {"jid": f"carol@{prosody.domain}"}))
        with pytest.raises(IqError) as refused:
            await question.send(timeout=10)
        assert refused.value.condition == "service-unavailable"
        assert not refused.value.iq.xml.findall(".//{urn:addinbot:relay:0}room")

        # A last round trip through each process, then count what carol received.
        for process in processes:
            carol.send_chat(resource(process), "help")
            await carol.wait_for(sent_by(resource(process)), 10)
        got = [m for m in carol.drain() if m["body"]]
        assert not [m["body"] for m in got if m["type"] == "groupchat" and m["body"] == said]
        assert [e for e in audit_actions(config) if e == "attach"] == ["attach"]


def audit_actions(config: Path) -> list[str]:
    """The actions in the audit log, oldest first, read with the command line."""
    done = subprocess.run(
        [sys.executable, "-m", "bot", "audit", "--json", "--config", str(config)],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=True,
    )
    return [entry["action"] for entry in reversed(json.loads(done.stdout))]
