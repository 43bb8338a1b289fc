"""Load: 50 clients send 1,000 commands at once to a bot running as its own process.

Every command must be answered exactly once (replies are matched to requests: one sender's
commands are answered in the order sent), no change may be lost (the store holds exactly the
add-ins whose registration was answered with success), and the bot's event loop must stay
responsive: a probe inside the bot process sleeps 10 ms in a loop and records how late it
wakes.  The figures are printed; run with ``-s`` to see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from bot.runner import Service
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import TestClient
from tests.integration.conftest import PASSWORD, jid, write_config
from tests.integration.test_faults import BotProcess, LagProbe, from_bot_direct, with_admins

pytestmark = [pytest.mark.xmpp, pytest.mark.sqlite_only]

CLIENTS = 50
PER_CLIENT = 20  # 1,000 commands: every other one a register, the rest list
DEADLINE_S = 60.0
# Measured 60-230 ms on 2 cores: slixmpp parses every stanza of one socket read, and runs
# the bot's handlers for each, inside a single callback (asyncio debug mode names
# _SelectorSocketTransport._read_ready); a burst of 1,000 stanzas arrives in a few reads.
WORST_LAG_S = 0.5


# --- the bot process, with a lag probe on its loop -----------------------------------------


def serve_measured(config: str, report: str) -> None:
    """Run the bot like `addinbot run`, with a LagProbe on its loop. SIGUSR1 starts the
    measured window afresh; SIGTERM stops the bot and writes the figures to `report`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    logging.getLogger("slixmpp").setLevel(logging.WARNING)
    asyncio.run(_serve_measured(load_settings(Path(config)), Path(report)))


async def _serve_measured(settings: Settings, report: Path) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    probe = LagProbe()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, probe.reset)
    service = Service(settings)
    await service.start()
    probe.start()
    await stop.wait()
    await probe.stop()
    figures = {
        "worst": probe.worst, "p50": probe.percentile(0.5), "p99": probe.percentile(0.99),
        "samples": len(probe.samples),
    }
    await asyncio.to_thread(report.write_text, json.dumps(figures), "utf-8")
    await service.stop()


# --- the test ------------------------------------------------------------------------------


def register_line(client: int, number: int) -> tuple[str, str]:
    name = f"L{client:02}-{number:02}"
    return name, f"https://l{client:02}-{number:02}.example.org/"


async def test_fifty_clients_send_a_thousand_commands_at_once(
    prosody: Prosody, tmp_path: Path
) -> None:
    users = [f"load{n:02}" for n in range(CLIENTS)]
    await asyncio.gather(*(asyncio.to_thread(prosody.register, u, PASSWORD) for u in users))
    config = with_admins(write_config(prosody, tmp_path), [jid(prosody, u) for u in users])
    report = tmp_path / "lag.json"
    command = [
        sys.executable, "-c",
        "import sys; from tests.integration.test_load import serve_measured; "
        "serve_measured(sys.argv[1], sys.argv[2])",
        str(config), str(report),
    ]
    bot_jid = jid(prosody, "addinbot")
    is_reply = from_bot_direct(bot_jid)
    clients = [TestClient(jid(prosody, u), PASSWORD) for u in users]
    with BotProcess(config, tmp_path / "bot.log", command) as bot:
        await bot.start()
        try:
            await asyncio.gather(*(c.start(prosody.host, prosody.port) for c in clients))
            expected: list[list[str]] = [[] for _ in clients]  # what each reply must be
            replies: list[list[str]] = [[] for _ in clients]
            assert bot.process is not None
            bot.process.send_signal(signal.SIGUSR1)  # measure from here
            await asyncio.sleep(0.1)
            started = time.monotonic()
            for number in range(PER_CLIENT):
                for index, client in enumerate(clients):
                    if number % 2 == 0:
                        name, url = register_line(index, number)
                        client.send_chat(bot_jid, f"register {name} {url}")
                        expected[index].append(f"Registered “{name}” in {prosody.muc}: {url}")
                    else:
                        client.send_chat(bot_jid, "list")
                        expected[index].append(f"Add-ins in {prosody.muc} (")
            total = CLIENTS * PER_CLIENT
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DEADLINE_S
            while sum(map(len, replies)) < total:
                assert loop.time() < deadline, f"{sum(map(len, replies))} of {total} answered"
                for index, client in enumerate(clients):
                    replies[index] += [str(m["body"]) for m in client.drain() if is_reply(m)]
                await asyncio.sleep(0.01)
            elapsed = time.monotonic() - started
            bot.process.send_signal(signal.SIGTERM)  # the report covers the burst only
            await asyncio.sleep(0.5)  # a duplicate would have arrived by now
            for index, client in enumerate(clients):
                replies[index] += [str(m["body"]) for m in client.drain() if is_reply(m)]
        finally:
            await asyncio.gather(*(c.stop() for c in clients))
        assert await bot.exited() == 0  # told to stop (SIGTERM) above
        figures = json.loads(report.read_text("utf-8"))

    # Exactly one answer per command, each the right one, in the order sent.
    for index in range(CLIENTS):
        assert len(replies[index]) == PER_CLIENT, (users[index], replies[index])
        for want, got in zip(expected[index], replies[index], strict=True):
            assert got == want if want.startswith("Registered") else got.startswith(want), (
                users[index], want, got
            )
    successes = {
        register_line(index, number)
        for index in range(CLIENTS) for number in range(0, PER_CLIENT, 2)
    }
    with contextlib.closing(sqlite3.connect(tmp_path / "addinbot.db")) as db:
        stored = set(db.execute("SELECT name, url FROM addin").fetchall())
    assert stored == successes

    print(
        f"\nload: {total} commands from {CLIENTS} clients answered in {elapsed:.2f} s "
        f"({total / elapsed:.0f}/s); {len(stored)} add-ins stored = {len(successes)} success "
        f"replies; bot loop lag worst {figures['worst'] * 1000:.1f} ms, p99 "
        f"{figures['p99'] * 1000:.1f} ms, p50 {figures['p50'] * 1000:.2f} ms over "
        f"{figures['samples']} samples"
    )
    assert figures["worst"] < WORST_LAG_S
