"""The add-in registry over direct messages, against a real Prosody with real clients."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot import addins
from bot.config import load_settings
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import TestClient
from tests.integration.conftest import (
    PASSWORD,
    BotHandle,
    create_room,
    jid,
    new_server,
    write_config,
)

pytestmark = pytest.mark.xmpp

URL = "https://stocks.example.org/panel"


def names_in(handle: BotHandle) -> list[str]:
    assert handle.service is not None
    page = addins.list_addins(handle.service.store, pool=handle.settings.pools.names[0])
    return [name for name, _url, _uses in page.items]


def audit_count(handle: BotHandle) -> int:
    assert handle.service is not None
    return len(addins.audit(handle.service.store, limit=1000))


async def test_admin_manages_the_registry(bot: BotHandle, people, prosody: Prosody) -> None:
    admin = await people("admin")
    to = jid(prosody, "addinbot")

    reply = await admin.ask(to, f'register "Stock Ticker" {URL}')
    assert reply == f"Registered “Stock Ticker” in {prosody.muc}: {URL}"

    reply = await admin.ask(to, "list")
    assert f"• Stock Ticker — {URL} (0 rooms)" in reply

    reply = await admin.ask(to, '!addin show "stock ticker"')
    assert "URL: " + URL in reply
    assert f"Registered by {jid(prosody, 'admin')}" in reply

    reply = await admin.ask(to, 'update "Stock Ticker" url https://new.example.org/x')
    assert reply == "“Stock Ticker” now points to https://new.example.org/x"

    reply = await admin.ask(to, 'update "Stock Ticker" name Ticker')
    assert reply == "Renamed “Stock Ticker” to “Ticker”."
    assert names_in(bot) == ["Ticker"]

    reply = await admin.ask(to, "unregister Ticker")
    assert reply == "Unregistered “Ticker”."
    assert names_in(bot) == []

    reply = await admin.ask(to, "audit 10")
    lines = reply.splitlines()
    assert [line.split("  ")[2].split()[0] for line in lines] == [
        "unregister", "rename", "update-url", "register",
    ]
    assert all(f"{jid(prosody, 'admin')} (dm)" in line for line in lines)


async def test_non_admin_is_refused_and_nothing_changes(
    bot: BotHandle, people, prosody: Prosody
) -> None:
    mallory = await people("mallory")
    to = jid(prosody, "addinbot")
    before = audit_count(bot)
    reply = await mallory.ask(to, f"register Evil {URL}")
    assert reply == "Only an addinbot admin may run register."
    reply = await mallory.ask(to, "help")
    assert "register" not in reply
    assert "list" in reply
    assert names_in(bot) == []
    assert audit_count(bot) == before


async def test_private_message_through_a_room_never_proves_an_admin(
    bot: BotHandle, people, prosody: Prosody, room: str
) -> None:
    assert bot.service is not None
    admin = await people("admin")
    await admin.ask(jid(prosody, "addinbot"), f"join {await create_room(prosody, room)}")
    await bot.in_room(room)
    mallory = await people("mallory")
    # The nickname is the admin's own JID and user name: it must prove nothing.
    for nick in ("admin", jid(prosody, "admin")):
        await mallory.join_room(room, nick)
        mallory.send_chat(f"{room}/AddinBot", f"register Evil {URL}")
        reply = await mallory.next_message(
            predicate=lambda m: m["from"].bare == room and m["type"] == "chat"
        )
        assert "not through a room" in reply["body"]
        # Gone before the next nickname: a presence to the room while still in it would
        # be a change of nickname, not a join.
        await mallory.leave_room_wait(room, nick)
    assert names_in(bot) == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("javascript:alert(1)", "only http and https"),
        ("https://good.example@evil.example/", "user name or password"),
        ("https://evil.example/\u202egnp.exe", "bidirectional"),
        ("https://ｅｖｉｌ.example／x", "look-alike"),
    ],
)
async def test_hostile_url_is_refused_and_not_stored(
    bot: BotHandle, people, prosody: Prosody, url: str, reason: str
) -> None:
    admin = await people("admin")
    reply = await admin.ask(jid(prosody, "addinbot"), f'register Hostile "{url}"')
    assert reply.startswith("URL refused: ")
    assert reason in reply
    assert names_in(bot) == []


async def test_unknown_command_and_bad_arguments_get_usage(
    bot: BotHandle, people, prosody: Prosody
) -> None:
    admin = await people("admin")
    to = jid(prosody, "addinbot")
    reply = await admin.ask(to, "frobnicate now")
    assert reply.startswith("Unknown command “frobnicate”. Commands: help, register")
    reply = await admin.ask(to, "register OnlyAName")
    assert reply == "Missing <url>. Usage: register <name> <url> [pool <pool>]"
    reply = await admin.ask(to, 'register "unbalanced')
    assert reply.startswith("Unbalanced quotes")


async def test_a_lone_command_is_answered_at_once(bot: BotHandle, people, prosody) -> None:
    """A reply must leave when it is ready, not when the next stanza happens to arrive."""
    admin = await people("admin")
    started = time.monotonic()
    reply = await admin.ask(jid(prosody, "addinbot"), "list", timeout=2.0)
    assert reply == f"No add-ins are registered in {prosody.muc}."
    assert time.monotonic() - started < 2.0


def test_run_stops_cleanly_on_sigterm(prosody: Prosody, tmp_path: Path) -> None:
    config = write_config(prosody, tmp_path)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--config", str(config)],
        stderr=subprocess.PIPE, text=True, env=env,
    ) as process:
        try:
            assert process.stderr is not None
            deadline = time.monotonic() + 20
            seen = ""
            while "connected as" not in seen:
                assert time.monotonic() < deadline, seen
                seen += process.stderr.readline()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
            assert "integration-pw" not in seen + process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()


async def test_commands_from_one_sender_are_answered_in_order(
    bot: BotHandle, people, prosody: Prosody
) -> None:
    admin = await people("admin")
    to = jid(prosody, "addinbot")
    for number in range(5):
        admin.send_chat(to, f"register A{number} https://a{number}.example.org/")
    replies = [
        (await admin.next_message(predicate=lambda m: m["from"].bare == to))["body"]
        for _ in range(5)
    ]
    assert replies == [
        f"Registered “A{n}” in {prosody.muc}: https://a{n}.example.org/" for n in range(5)
    ]


async def test_reconnects_after_the_server_restarts(tmp_path: Path) -> None:
    server = new_server(tmp_path / "own-server")
    server.start()
    try:
        for user in ("addinbot", "admin"):
            server.register(user, PASSWORD)
        handle = BotHandle(load_settings(write_config(server, tmp_path)))
        service = await handle.start()
        try:
            server.kill()
            deadline = time.monotonic() + 10
            while service.edge.online.is_set():  # the bot notices the server gone
                assert time.monotonic() < deadline, "the bot still thinks it is online"
                await asyncio.sleep(0.02)
            server.start()
            await asyncio.wait_for(service.edge.online.wait(), 20)
            admin = TestClient(jid(server, "admin"), PASSWORD)
            await admin.start(server.host, server.port)
            try:
                reply = await admin.ask(jid(server, "addinbot"), "list")
                assert reply == f"No add-ins are registered in {server.muc}."
            finally:
                await admin.stop()
        finally:
            await handle.stop()
    finally:
        server.stop()
