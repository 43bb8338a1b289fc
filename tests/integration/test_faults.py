"""Faults, against real servers: the XMPP server killed, the bot killed mid-write, the SQLite
file locked by another writer, PostgreSQL stopped, an unexpected exception in a handler.

Each test is bounded in time and traffic and uses loopback only.  The figures they measure
(rejoin time, event-loop lag) are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from slixmpp import JID, Message
from slixmpp.stanza import Presence

from bot import addins
from bot.announce import attached_sentence, welcome_sentence
from bot.config import Settings, load_settings
from bot.errors import StoreBusy
from bot.values import Actor
from store import Store
from tests.harness.postgres import Postgres
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import TestClient
from tests.integration.conftest import PASSWORD, BotHandle, create_room, jid, write_config

pytestmark = [pytest.mark.xmpp, pytest.mark.sqlite_only]

NICK = "AddinBot"
BUSY = StoreBusy().reason
ROOT = Path(__file__).resolve().parents[2]  # the checkout: child processes import from it
REGISTERED = re.compile(r"^Registered “(?P<name>[^”]+)” in (?P<pool>\S+): (?P<url>\S+)$")


# --- shared helpers (also used by test_load and test_secrets) ------------------------------


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.02)


class LagProbe:
    """Measures how late the event loop wakes a task that sleeps `period` in a loop: any
    blocking work on the loop shows up as overshoot."""

    def __init__(self, period: float = 0.010) -> None:
        self.period = period
        self.worst = 0.0
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lag probe")

    def reset(self) -> None:
        self.worst, self.samples = 0.0, []

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.period)
            late = loop.time() - before - self.period
            self.samples.append(late)
            self.worst = max(self.worst, late)

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class BotProcess:
    """`python -m bot run --config FILE` (or another command line) as a child process,
    its log (standard error) in a file."""

    def __init__(self, config: Path, log: Path, command: list[str] | None = None) -> None:
        self.config = config
        self.log = log
        self.command = command or [sys.executable, "-m", "bot", "run", "--config", str(config)]
        self.process: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def text(self) -> str:
        try:
            return self.log.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    async def start(self, timeout: float = 30.0, ready: str = "connected as") -> None:
        """Start it; return once its log says `ready` (after what it logged before)."""
        self._offset = len(self.text())
        process = self.process = self._spawn()
        await until(
            lambda: ready in self.text()[self._offset:] or process.poll() is not None,
            f"the bot to log {ready!r}", timeout,
        )
        assert process.poll() is None, f"the bot exited {process.returncode}:\n{self.text()}"

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as err:
            return subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                env=env, cwd=ROOT,
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    async def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM; the exit status (killed if it does not stop in time)."""
        process = self.process
        assert process is not None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        return await self.exited(timeout)

    async def exited(self, timeout: float = 15.0) -> int:
        """The exit status once the bot, already told to stop, has (killed if it does not
        stop in time). A second SIGTERM could land after its loop is closed, when nothing
        handles it any more, and kill it mid-way through a clean exit."""
        process = self.process
        assert process is not None
        try:
            await until(lambda: process.poll() is not None, "the bot to stop", timeout)
        finally:
            self.kill()
        return process.returncode

    def __enter__(self) -> BotProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.kill()


def with_admins(config: Path, admins: list[str]) -> Path:
    """Replace the config's admins (write_config names only admin@domain)."""
    text = config.read_text("utf-8")
    text, count = re.subn(r"(?m)^admins = \[.*\]$", f"admins = {admins!r}".replace("'", '"'),
                          text)
    assert count == 1
    config.write_text(text, "utf-8")
    return config


def from_bot_direct(bot_jid: str) -> Callable[[Message], bool]:
    return lambda m: m["from"].bare == bot_jid and m["type"] == "chat" and bool(m["body"])


# --- the XMPP server killed ----------------------------------------------------------------


async def make_persistent(client: TestClient, room: str) -> None:
    """Configure the room as persistent: Prosody then saves it at once (a room it has only
    by default it saves at a clean shutdown, and loses in a crash)."""
    muc = client.plugin["xep_0045"]
    form = await muc.get_room_config(room)
    form.get_fields()["muc#roomconfig_persistentroom"]["value"] = True
    await muc.set_room_config(room, form)


async def test_prosody_killed_the_bot_rejoins_each_room_once(tmp_path: Path) -> None:
    server = Prosody(tmp_path / "prosody")
    server.start()
    clients: list[TestClient] = []
    handle: BotHandle | None = None

    async def connect(user: str) -> TestClient:
        client = TestClient(jid(server, user), PASSWORD)
        await client.start(server.host, server.port)
        clients.append(client)
        return client

    try:
        for user in ("addinbot", "admin", "alice", "bob", "carol"):
            server.register(user, PASSWORD)
        handle = BotHandle(load_settings(write_config(server, tmp_path)))
        service = await handle.start()
        loop = asyncio.get_running_loop()
        joins: list[tuple[str, float]] = []  # (room, when) of every join presence sent

        def count_joins(stanza: Any) -> Any:
            if (
                isinstance(stanza, Presence) and stanza["type"] in ("", "available")
                and stanza.xml.find("{http://jabber.org/protocol/muc}x") is not None
            ):
                joins.append((stanza["to"].bare, loop.time()))
            return stanza

        service.edge.add_filter("out", count_joins)

        # Alice owns three persistent rooms; the bot serves them with an add-in attached.
        rooms = [f"fault{n}@{server.muc}" for n in range(3)]
        alice = await connect("alice")
        for room in rooms:
            await alice.join_room(room, "alice")
            await make_persistent(alice, room)
        bot_jid = jid(server, "addinbot")
        admin = await connect("admin")
        assert (await admin.ask(bot_jid, "register Ticker https://t.example.org/")).startswith(
            "Registered"
        )
        for room in rooms:
            assert (await admin.ask(bot_jid, f"join {room}")).startswith(f"Joining {room}")
            await handle.in_room(room)
            reply = await admin.ask(bot_jid, f"attach {room} Ticker")
            assert reply.startswith(f"{room} now has the add-in")
        sentence = welcome_sentence("Ticker", "https://t.example.org/")
        for user in ("bob", "carol"):  # joiners: each told once in each room
            person = await connect(user)
            for room in rooms:
                await person.join_room(room, user)
                told = await person.next_message(5, lambda m, r=room: m["from"].bare == r
                                                 and m["type"] == "chat")
                assert told["body"] == sentence
        assert sorted(room for room, _ in joins) == rooms

        # SIGKILL: no stream close, every client sees the connection drop.
        joins.clear()
        killed_at = loop.time()
        server.kill()
        await until(lambda: not service.edge.online.is_set(), "the bot to notice", 10)
        await asyncio.sleep(1.5)  # down a while: the bot's first reconnect attempt fails
        server.start()
        back_at = loop.time()
        for client in clients:
            client.abort()  # their streams are dead; do not wait on them
        # Bob is back at once (most likely in the rooms before the bot), Carol only later.
        bob = await connect("bob")
        for room in rooms:
            await bob.join_room(room, "bob")
        bob_first = not any(service.app.rooms.is_live(r) for r in rooms)
        await until(lambda: all(service.app.rooms.is_live(r) for r in rooms),
                    "the bot to rejoin every room", 30 - (back_at - killed_at))
        rejoined_at = loop.time()
        print(
            f"\nrejoin: all {len(rooms)} rooms live {rejoined_at - back_at:.2f} s after Prosody "
            f"was back, {rejoined_at - killed_at:.2f} s after the kill (down "
            f"{back_at - killed_at:.2f} s); bob was back in the rooms "
            f"{'before' if bob_first else 'after'} the bot"
        )
        assert rejoined_at - killed_at < 30

        # Nobody already told is told again, and the bot works.
        carol = await connect("carol")
        admin = await connect("admin")
        for room in rooms:
            await carol.join_room(room, "carol")
        await asyncio.gather(*(
            person.expect_no_message(1.5, lambda m: m["from"].bare in rooms)
            for person in (bob, carol)
        ))
        assert (await admin.ask(bot_jid, "list")).startswith(f"Add-ins in {server.muc} (1;")
        carol.send_groupchat(rooms[0], "!addin")
        said = await carol.next_message(5, lambda m: m["from"] == JID(f"{rooms[0]}/{NICK}")
                                        and m["type"] == "groupchat" and bool(m["body"]))
        assert said["body"] == sentence
        # Exactly one join per room since the kill, and no second one later.
        assert sorted(room for room, _ in joins) == rooms, joins
    finally:
        for client in clients:
            await client.stop()
        if handle is not None:
            await handle.stop()
        server.stop()


# --- the bot killed during a thousand writes -----------------------------------------------

WRITERS = 5
CHAT_WRITES = 180  # per writer: 900 by chat
CLI_IN_PROCESS = 90  # bot.cli.main in threads, in this process
CLI_PROCESSES = 10  # `python -m bot addin register` child processes
KILL_AFTER = 300  # acknowledged chat writes


def url_for(name: str) -> str:
    return f"https://{name.lower()}.example.org/"


async def test_the_bot_killed_during_a_thousand_writes_loses_nothing_acknowledged(
    prosody: Prosody, tmp_path: Path
) -> None:
    from bot import cli

    writers = [f"kw{n}" for n in range(WRITERS)]
    for user in writers:
        prosody.register(user, PASSWORD)
    config = with_admins(write_config(prosody, tmp_path), [jid(prosody, u) for u in writers])
    database = tmp_path / "addinbot.db"
    bot_jid = jid(prosody, "addinbot")
    acked: dict[str, str] = {}  # name -> URL, for every success reply or CLI exit 0
    sent: set[str] = set()
    clients: list[TestClient] = []

    def cli_writes(names: list[str]) -> None:
        for name in names:
            code = cli.main(["addin", "register", name, url_for(name), "--config", str(config)])
            if code == 0:
                acked[name] = url_for(name)

    async def cli_process_writes(names: list[str]) -> None:
        for name in names:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "addin", "register", name, url_for(name),
                "--config", str(config),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )
            if await asyncio.wait_for(process.wait(), 60) == 0:
                acked[name] = url_for(name)

    def collect() -> list[str]:
        """Take the bot's replies; note every success as acknowledged."""
        other = []
        for client in clients:
            for message in client.drain():
                if not from_bot_direct(bot_jid)(message):
                    continue
                match = REGISTERED.match(str(message["body"]))
                if match:
                    acked[match["name"]] = match["url"]
                else:
                    other.append(str(message["body"]))
        return other

    with BotProcess(config, tmp_path / "bot.log") as bot:
        await bot.start()
        for user in writers:
            client = TestClient(jid(prosody, user), PASSWORD)
            await client.start(prosody.host, prosody.port)
            clients.append(client)
        try:
            in_process = [f"p{n:03}" for n in range(CLI_IN_PROCESS)]
            processes = [f"s{n:02}" for n in range(CLI_PROCESSES)]
            sent.update(in_process, processes)
            background = [
                # One thread: Alembic's module-level context (every CLI call migrates
                # first) is not for concurrent use within one process.
                asyncio.create_task(asyncio.to_thread(cli_writes, in_process)),
                asyncio.create_task(cli_process_writes(processes[0::2])),
                asyncio.create_task(cli_process_writes(processes[1::2])),
            ]
            for number in range(CHAT_WRITES):
                for writer, client in enumerate(clients):
                    name = f"c{writer}-{number:03}"
                    sent.add(name)
                    client.send_chat(bot_jid, f"register {name} {url_for(name)}")
            unexpected: list[str] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while sum(name.startswith("c") for name in acked) < KILL_AFTER:
                assert loop.time() < deadline, f"only {len(acked)} acknowledged"
                unexpected += collect()
                await asyncio.sleep(0.01)
            bot.kill()
            killed_with = len(acked)
            await asyncio.wait_for(asyncio.gather(*background), 120)
            await asyncio.sleep(1.0)  # replies the bot sent before it died
            unexpected += collect()
        finally:
            for client in clients:
                await client.stop()
        assert not [text for text in unexpected if "went wrong" in text], unexpected

        # The file is sound, and holds every acknowledged change, each with its audit row.
        with contextlib.closing(sqlite3.connect(database)) as db:
            assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert db.execute("PRAGMA foreign_key_check").fetchall() == []
            stored = dict(db.execute("SELECT name, url FROM addin").fetchall())
            audited = {
                row[0] for row in db.execute(
                    "SELECT addin FROM auditevent WHERE action = 'register'"
                )
            }
        chat_acked = sum(name.startswith("c") for name in acked)
        print(
            f"\nkill: {killed_with} acknowledged when killed; {chat_acked} chat + "
            f"{len(acked) - chat_acked} CLI acknowledged in all; {len(stored)} stored of "
            f"{len(sent)} sent"
        )
        missing = {name: url for name, url in acked.items() if stored.get(name) != url}
        assert not missing, f"{len(missing)} acknowledged changes lost: {sorted(missing)[:10]}"
        assert set(stored) <= sent
        assert audited == set(stored)
        assert chat_acked < WRITERS * CHAT_WRITES, "the kill came after every chat write"
        assert all(name in acked for name in sent if not name.startswith("c"))

        # And the bot starts again on that file and answers.
        await bot.start()
        admin = TestClient(jid(prosody, writers[0]), PASSWORD)
        await admin.start(prosody.host, prosody.port)
        try:
            reply = await admin.ask(bot_jid, "list", timeout=10)
            assert reply.startswith(f"Add-ins in {prosody.muc} ({len(stored)}; page 1 of")
        finally:
            await admin.stop()
        assert await bot.terminate() == 0


# --- SQLite locked by another writer -------------------------------------------------------

LOCK_S = 7.0


async def test_a_locked_sqlite_file_gets_busy_answers_and_never_blocks_the_loop(
    bot: BotHandle, people: Callable[..., Any], prosody: Prosody
) -> None:
    bot_jid = jid(prosody, "addinbot")
    admin, alice = await people("admin"), await people("alice")
    path = bot.settings.store.url.removeprefix("sqlite:///")
    probe = LagProbe()
    probe.start()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        locked_at = time.monotonic()
        probe.reset()
        admin.send_chat(bot_jid, "register Locked https://locked.example.org/")
        # A read is not held up by the writer (WAL), even while a write waits.
        listed = await alice.ask(bot_jid, "list", timeout=2)
        read_s = time.monotonic() - locked_at
        assert listed == f"No add-ins are registered in {prosody.muc}."
        answer = await admin.next_message(LOCK_S, from_bot_direct(bot_jid))
        answered_s = time.monotonic() - locked_at
        still_locked = other.in_transaction
        worst = probe.worst
        print(
            f"\nlocked: busy answer after {answered_s:.2f} s, read answered after "
            f"{read_s:.2f} s; worst loop lag {worst * 1000:.1f} ms over {len(probe.samples)} "
            f"samples (p99 {probe.percentile(0.99) * 1000:.1f} ms)"
        )
        assert answer["body"] == BUSY
        assert answered_s < 6.5, "the answer must not wait for the lock"
        assert still_locked
        assert worst < 0.100
        await asyncio.sleep(max(0.0, LOCK_S - (time.monotonic() - locked_at)))
        other.execute("ROLLBACK")
    finally:
        other.close()
        await probe.stop()
    # Nothing was half-done; once the lock is gone the same command works.
    assert bot.service is not None
    assert addins.list_addins(bot.service.store, pool=prosody.muc).total == 0
    reply = await admin.ask(bot_jid, "register Locked https://locked.example.org/")
    assert reply == f"Registered “Locked” in {prosody.muc}: https://locked.example.org/"


# --- PostgreSQL stopped while the bot runs -------------------------------------------------


@pytest.fixture
def private_postgres() -> Any:
    server = Postgres()
    try:
        server.start()
        yield server
    finally:
        server.remove()


def on_postgres(settings_path: Path, url: str) -> Settings:
    text = settings_path.read_text("utf-8")
    text, count = re.subn(r'(?m)^url = "sqlite:.*"$', f'url = "{url}"', text)
    assert count == 1
    settings_path.write_text(text, "utf-8")
    return load_settings(settings_path)


@pytest.mark.postgres
async def test_postgres_stopped_commands_get_a_clear_error_and_the_bot_recovers(
    private_postgres: Postgres, prosody: Prosody, people: Callable[..., Any], room: str,
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bot")
    settings = on_postgres(write_config(prosody, tmp_path), private_postgres.url())
    handle = BotHandle(settings)
    service = await handle.start()
    outside = Store.open(private_postgres.url())  # another process's view, e.g. the CLI
    bot_jid = jid(prosody, "addinbot")
    try:
        admin, alice = await people("admin"), await people("alice")
        assert (await admin.ask(bot_jid, "register Before https://before.example.org/")
                ).startswith("Registered “Before”")
        await create_room(prosody, room)
        assert (await admin.ask(bot_jid, f"join {room}")).startswith(f"Joining {room}")
        await handle.in_room(room)
        await alice.join_room(room, "alice")

        await asyncio.to_thread(private_postgres.stop)
        started = time.monotonic()
        assert await admin.ask(bot_jid, "register During https://during.example.org/",
                               timeout=10) == BUSY
        assert await admin.ask(bot_jid, "list", timeout=10) == BUSY
        alice.send_groupchat(room, "!addin")
        told = await alice.next_message(10, lambda m: m["from"] == JID(f"{room}/{NICK}")
                                        and bool(m["body"]))
        assert told["body"] == BUSY
        assert told["type"] == "chat"  # privately, to her alone
        assert time.monotonic() - started < 10
        # The change follower has met the outage and keeps going.
        await until(lambda: "cannot read changes" in caplog.text, "the follower to notice", 5)
        # ... and looks again at its next poll, the database still away: it has not died.
        await until(lambda: caplog.text.count("cannot read changes") >= 2,
                    "the follower to look again", 10)
        assert service.edge.online.is_set()
        assert service.app.announcer._task is not None
        assert not service.app.announcer._task.done()

        await asyncio.to_thread(private_postgres.start)
        reply = await admin.ask(bot_jid, "register After https://after.example.org/", timeout=10)
        assert reply == f"Registered “After” in {prosody.muc}: https://after.example.org/"
        # A change made outside the bot is announced again: the follower survived.
        await asyncio.to_thread(
            addins.attach, outside, Actor("ops", "cli"), room=room, name="After"
        )
        said = await alice.next_message(10, lambda m: m["from"] == JID(f"{room}/{NICK}")
                                        and m["type"] == "groupchat" and bool(m["body"]))
        assert said["body"] == attached_sentence("After", "https://after.example.org/")
        names = [n for n, _u, _r in addins.list_addins(outside, pool=prosody.muc).items]
        assert names == ["After", "Before"]
    finally:
        await handle.stop()
        outside.close()


# --- an unexpected exception in a handler --------------------------------------------------


async def test_an_unexpected_exception_gives_a_reference_that_is_in_the_log(
    bot: BotHandle, people: Callable[..., Any], prosody: Prosody,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("the list is on fire")

    monkeypatch.setattr(addins, "list_addins", broken)
    bot_jid = jid(prosody, "addinbot")
    admin = await people("admin")
    with caplog.at_level(logging.ERROR):
        reply = await admin.ask(bot_jid, "list")
    match = re.fullmatch(r"Sorry, something went wrong \(ref: (\w+)\)\..*", reply)
    assert match, reply
    ref = match[1]
    assert "fire" not in reply
    assert "Traceback" not in reply
    logged = [r for r in caplog.records if ref in r.getMessage()]
    assert len(logged) == 1, caplog.text
    assert logged[0].levelno == logging.ERROR
    assert logged[0].exc_info is not None
    assert "RuntimeError: the list is on fire" in caplog.text
    assert "Traceback" in caplog.text

    # The bot keeps running: the next command is answered, and so is the same one once fixed.
    assert (await admin.ask(bot_jid, "help")).startswith("help ")
    monkeypatch.undo()
    assert await admin.ask(bot_jid, "list") == f"No add-ins are registered in {prosody.muc}."
