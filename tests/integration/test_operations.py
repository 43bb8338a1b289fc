"""Operating the bot: JSON log lines, /metrics and /health, and `addinbot check`.

The counters are checked against a running bot and a real Prosody (they must move when
people use the bot); /health against a Prosody that goes away and comes back; `check` as
the command line an operator runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from bot.config import ConfigError, load_settings
from bot.logs import JsonFormatter
from bot.metrics import METRICS, MetricsServer
from store import Store
from tests.harness.prosody import Prosody, free_port
from tests.harness.xmpp_client import TestClient
from tests.integration.conftest import PASSWORD, BotHandle, jid, write_config

pytestmark = pytest.mark.sqlite_only  # `check` and /health are shown on the SQLite default

People = Callable[[str], Awaitable[TestClient]]
Samples = dict[str, float]

URL = "https://stocks.example.org/panel"


# --- helpers -------------------------------------------------------------------------------


def with_sections(config: Path, text: str) -> Path:
    config.write_text(config.read_text(encoding="utf-8") + text, encoding="utf-8")
    return config


def metrics_config(server: Prosody, folder: Path) -> Path:
    return with_sections(write_config(server, folder), '\n[metrics]\nlisten = "127.0.0.1:0"\n')


def fetch(port: int, path: str, method: str = "GET") -> tuple[int, str, str]:
    """(status, content type, body) of one HTTP request to the metrics server (blocking)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


async def get(port: int, path: str, method: str = "GET") -> tuple[int, str, str]:
    return await asyncio.to_thread(fetch, port, path, method)


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
LABEL = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"')


def parse_metrics(text: str) -> Samples:
    """Every sample of a Prometheus text exposition, keyed `name{labels}` with the labels in
    alphabetical order (their order means nothing); each family must have its HELP and TYPE
    lines first."""
    samples: Samples = {}
    described: set[str] = set()
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            described.add(line.split()[2])
        elif line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in ("counter", "gauge"), line
            typed.add(name)
        else:
            match = SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name, labels, value = match.groups()
            assert name in described, f"{name} has no HELP line"
            assert name in typed, f"{name} has no TYPE line"
            if labels:
                labels = "{" + ",".join(sorted(LABEL.findall(labels))) + "}"
            samples[name + (labels or "")] = float(value)
    return samples


async def scrape(port: int) -> Samples:
    status, content_type, body = await get(port, "/metrics")
    assert status == 200
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    return parse_metrics(body)


def moved(before: Samples, after: Samples) -> Samples:
    """The samples that changed, by how much."""
    return {key: after[key] - before.get(key, 0.0)
            for key in after if after[key] != before.get(key, 0.0)}


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.1)


def metrics_port(handle: BotHandle) -> int:
    assert handle.service is not None
    assert handle.service.metrics is not None
    return handle.service.metrics.port


# --- /metrics and /health with a running bot -------------------------------------------------


@pytest.mark.xmpp
async def test_counters_move_when_people_use_the_bot(
    prosody: Prosody, people: People, tmp_path: Path, room: str
) -> None:
    handle = BotHandle(load_settings(metrics_config(prosody, tmp_path)))
    await handle.start()
    try:
        port = metrics_port(handle)
        to = jid(prosody, "addinbot")
        admin, mallory = await people("admin"), await people("mallory")
        before = await scrape(port)
        assert before["addinbot_xmpp_connected"] == 1
        assert before["addinbot_rooms_joined"] == 0

        assert "register" in await admin.ask(to, "help")
        assert await mallory.ask(to, f"register Evil {URL}") == (
            "Only an addinbot admin may run register."
        )
        assert moved(before, await scrape(port)) == {
            'addinbot_commands_total{outcome="ok",place="direct"}': 1,
            'addinbot_commands_total{outcome="refused",place="direct"}': 1,
            'addinbot_refusals_total{reason="not_admin"}': 1,
        }

        before = await scrape(port)
        bob, carol = await people("bob"), await people("carol")
        await bob.join_room(room, "bob")  # present before the bot: never told as a joiner
        await admin.ask(to, f"join {room}")
        await handle.in_room(room)
        await admin.ask(to, f"register Ticker {URL}")
        await admin.ask(to, f"attach {room} Ticker")
        said = await bob.next_message(predicate=lambda m: m["type"] == "groupchat"
                                      and m["from"].bare == room and bool(m["body"]))
        assert URL in said["body"]
        await carol.join_room(room, "carol")
        told = await carol.next_message(predicate=lambda m: m["type"] == "chat"
                                        and m["from"].bare == room)
        assert URL in told["body"]
        after = await scrape(port)
        assert after["addinbot_rooms_joined"] == 1
        assert moved(before, after) == {
            'addinbot_commands_total{outcome="ok",place="direct"}': 3,
            'addinbot_announcements_total{to="room"}': 1,
            'addinbot_announcements_total{to="joiner"}': 1,
            "addinbot_rooms_joined": 1,
        }

        assert await get(port, "/health") == (200, "text/plain; charset=utf-8", "ok\n")
        assert (await get(port, "/nothing"))[0] == 404
        assert (await get(port, "/metrics", method="POST"))[0] == 405
        assert (await get(port, "/health", method="HEAD"))[0] == 200
    finally:
        await handle.stop()


@pytest.mark.xmpp
async def test_health_follows_the_xmpp_connection_and_reconnects_are_counted(
    tmp_path: Path,
) -> None:
    server = Prosody(tmp_path / "own-prosody")
    server.start()
    try:
        server.register("addinbot", PASSWORD)
        handle = BotHandle(load_settings(metrics_config(server, tmp_path)))
        await handle.start()
        try:
            port = metrics_port(handle)
            assert (await get(port, "/health"))[0] == 200
            before = await scrape(port)

            server.kill()

            async def unhealthy() -> bool:
                return (await get(port, "/health"))[:1] == (503,)

            await until(unhealthy, 10, "/health says 503 once Prosody is gone")
            status, _type, body = await get(port, "/health")
            assert (status, body) == (503, "xmpp: not connected\n")
            assert (await scrape(port))["addinbot_xmpp_connected"] == 0

            server.start()

            async def healthy() -> bool:
                return (await get(port, "/health"))[0] == 200

            await until(healthy, 20, "/health says 200 once the bot is back")
            changes = moved(before, await scrape(port))
            assert changes.get("addinbot_reconnects_total", 0) >= 1
        finally:
            await handle.stop()
    finally:
        server.stop()


# --- /metrics and /health, the server alone ------------------------------------------------


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(f"sqlite:///{tmp_path}/ops.db")
    yield store
    store.close()


async def test_health_names_each_problem(sqlite_engine: Store, tmp_path: Path) -> None:
    connected, store = [True], [sqlite_engine]
    server = MetricsServer(
        database_problem=lambda: store[0].problem(), connected=lambda: connected[0],
        rooms_joined=lambda: 3,
    )
    await server.start("127.0.0.1", 0)
    try:
        assert await get(server.port, "/health") == (200, "text/plain; charset=utf-8", "ok\n")
        samples = await scrape(server.port)
        assert samples["addinbot_rooms_joined"] == 3
        assert samples["addinbot_xmpp_connected"] == 1

        connected[0] = False
        away = Store.open(f"sqlite:///{tmp_path}/no/such/folder/x.db")
        store[0] = away
        status, _type, body = await get(server.port, "/health")
        away.close()
        lines = body.splitlines()
        assert status == 503
        assert lines[0] == "xmpp: not connected"
        assert lines[1].startswith("database: OperationalError: unable to open database file")
        assert len(lines) == 2
    finally:
        await server.stop()


async def test_last_error_time_is_when_an_error_was_logged(sqlite_engine: Store) -> None:
    server = MetricsServer(
        database_problem=sqlite_engine.problem, connected=lambda: True,
        rooms_joined=lambda: 0,
    )
    await server.start("127.0.0.1", 0)
    try:
        before = (await scrape(server.port))["addinbot_last_error_timestamp_seconds"]
        logging.getLogger("bot.somewhere").warning("only a warning")
        assert (await scrape(server.port))["addinbot_last_error_timestamp_seconds"] == before
        logged = time.time()
        logging.getLogger("bot.somewhere").error("something broke")
        after = (await scrape(server.port))["addinbot_last_error_timestamp_seconds"]
        assert logged - 1 < after <= time.time()
    finally:
        await server.stop()
    assert METRICS.last_error == after


async def test_a_malformed_or_slow_request_is_just_dropped(sqlite_engine: Store) -> None:
    server = MetricsServer(
        database_problem=sqlite_engine.problem, connected=lambda: True,
        rooms_joined=lambda: 0,
    )
    await server.start("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"NONSENSE\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert (await get(server.port, "/metrics"))[0] == 200  # still serving
    finally:
        await server.stop()


async def test_metrics_keep_to_their_own_registry_and_speak_openmetrics_when_asked(
    sqlite_engine: Store,
) -> None:
    assert not [family for family in REGISTRY.collect() if family.name.startswith("addinbot")]
    server = MetricsServer(
        database_problem=sqlite_engine.problem, connected=lambda: True,
        rooms_joined=lambda: 0,
    )
    await server.start("127.0.0.1", 0)
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.port}/metrics",
            headers={"Accept": "application/openmetrics-text; version=1.0.0"},
        )
        with await asyncio.to_thread(urllib.request.urlopen, request, timeout=5) as response:
            body = response.read().decode()
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert "addinbot_commands_total{" in body
        assert body.endswith("# EOF\n")
        assert "_created" not in (await get(server.port, "/metrics"))[2]
    finally:
        await server.stop()


def test_metrics_listen_is_checked_in_the_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[metrics]\nlisten = "everywhere"\n[log]\nformat = "xml"\n',
                      encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    problems = caught.value.problems
    assert "config: metrics.listen: 'everywhere' is not HOST:PORT (e.g. 127.0.0.1:9811)" in (
        problems
    )
    assert any(p.startswith("config: log.format: ") for p in problems)
    config.write_text('[metrics]\nlisten = "[::1]:9811"\n', encoding="utf-8")
    assert load_settings(config).metrics.address == ("::1", 9811)
    config.write_text("", encoding="utf-8")
    assert load_settings(config).metrics.address is None  # off by default


def test_run_says_when_the_metrics_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "addinbot.toml"
        config.write_text(
            '[xmpp]\njid = "addinbot@localhost"\npassword = "pw"\nhost = "127.0.0.1"\n'
            f'port = {free_port()}\ntls = "plain"\n[store]\nurl = "sqlite:///{tmp_path}/a.db"\n'
            f'[pools]\nnames = ["conference.localhost"]\n[metrics]\nlisten = "127.0.0.1:{port}"\n',
            encoding="utf-8",
        )
        done = subprocess.run(
            [sys.executable, "-m", "bot", "run", "--config", str(config)],
            capture_output=True, text=True, timeout=60, check=False,
        )
    # Not a configuration problem (exit 2 keeps systemd from restarting): the port may be
    # free in a moment, so exit 1, with one line and no traceback.
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"metrics: cannot listen on 127.0.0.1:{port} (metrics.listen): Address already in use"
    )
    assert "Traceback" not in done.stderr


# --- logs ----------------------------------------------------------------------------------


def test_json_log_lines_hold_the_exception() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("the bad value")
    except ValueError:
        record = logging.getLogger("bot.x").makeRecord(
            "bot.x", logging.ERROR, __file__, 1, "failed for %s\nsecond line", ("alice",),
            sys.exc_info(),
        )
    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert set(entry) == {"time", "level", "logger", "message", "exception"}
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "bot.x"
    assert entry["message"] == "failed for alice\nsecond line"
    assert entry["exception"].startswith("Traceback")
    assert entry["exception"].endswith("ValueError: the bad value")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["time"])


@pytest.mark.xmpp
def test_run_writes_json_lines_when_asked(prosody: Prosody, tmp_path: Path) -> None:
    config = with_sections(write_config(prosody, tmp_path), '\n[log]\nformat = "json"\n')
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--config", str(config)],
        stderr=subprocess.PIPE, text=True, env=env,
    ) as process:
        try:
            assert process.stderr is not None
            lines: list[str] = []
            deadline = time.monotonic() + 20
            while not any("connected as" in line for line in lines):
                assert time.monotonic() < deadline, lines
                lines.append(process.stderr.readline())
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
            lines += process.stderr.read().splitlines()
        finally:
            if process.poll() is None:
                process.kill()
    entries = [json.loads(line) for line in lines if line.strip()]
    assert len(entries) >= 3  # starting, connected, stopping
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry)
        assert entry["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    assert any(e["message"].startswith("connected as addinbot@") for e in entries)
    assert PASSWORD not in "\n".join(lines)


# --- addinbot check --------------------------------------------------------------------------


def check(config: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "check", "--config", str(config), "--timeout", "5"],
        capture_output=True, text=True, timeout=60, env={**os.environ, **env}, check=False,
    )


@pytest.mark.xmpp
def test_check_passes_against_the_test_server(prosody: Prosody, tmp_path: Path) -> None:
    done = check(write_config(prosody, tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0] == "config: ok"
    assert lines[1] == (
        f"database: ok: sqlite:///{tmp_path}/addinbot.db does not exist yet; `addinbot run` "
        "(or `addinbot db upgrade`) creates it"
    )
    assert lines[2] == (
        f'xmpp: ok: authenticated as addinbot@localhost at 127.0.0.1:{prosody.port} '
        f'(tls = "plain")'
    )
    assert not (tmp_path / "addinbot.db").exists()  # check creates nothing

    subprocess.run([sys.executable, "-m", "bot", "db", "upgrade", "--config",
                    str(tmp_path / "addinbot.toml")], check=True, capture_output=True)
    done = check(tmp_path / "addinbot.toml")
    assert done.returncode == 0, done.stderr
    assert re.search(r"^database: ok: sqlite:///\S+, schema at revision \S+ \(the latest\)$",
                     done.stdout, re.M), done.stdout


@pytest.mark.xmpp
def test_check_says_the_password_is_wrong(prosody: Prosody, tmp_path: Path) -> None:
    config = write_config(prosody, tmp_path)
    config.write_text(config.read_text().replace(PASSWORD, "not-the-password"))
    done = check(config)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"xmpp: 127.0.0.1:{prosody.port} refused the password for addinbot@localhost "
        "(not-authorized)"
    ]
    assert "not-the-password" not in done.stdout + done.stderr


@pytest.mark.xmpp
def test_check_says_the_server_is_unreachable(prosody: Prosody, tmp_path: Path) -> None:
    config = write_config(prosody, tmp_path)
    closed = free_port()
    config.write_text(config.read_text().replace(f"port = {prosody.port}", f"port = {closed}"))
    done = check(config)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"xmpp: cannot connect to 127.0.0.1:{closed}: Connection refused"
    ]


@pytest.mark.xmpp
def test_check_says_the_database_is_unreachable(prosody: Prosody, tmp_path: Path) -> None:
    closed = free_port()
    done = check(
        write_config(prosody, tmp_path),
        ADDINBOT_STORE__URL=f"postgresql+psycopg://addinbot:db-secret@127.0.0.1:{closed}/x",
    )
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(
        f"database: cannot use postgresql+psycopg://addinbot:***@127.0.0.1:{closed}/x: "
        "OperationalError: "
    )
    assert "Connection refused" in line
    assert "db-secret" not in done.stdout + done.stderr
    assert "xmpp: ok: " in done.stdout  # each part is checked, and said, on its own


def test_check_exits_2_on_a_config_problem(tmp_path: Path) -> None:
    config = tmp_path / "addinbot.toml"
    config.write_text(
        '[xmpp]\njid = "addinbot@localhost"\npassword_file = "/nonexistent/pw"\n'
        'host = "127.0.0.1"\ntls = "plain"\n[pools]\nnames = ["conference.localhost"]\n',
        encoding="utf-8",
    )
    done = check(config)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "config: xmpp.password_file: /nonexistent/pw is not a readable file"
    ]
    config.write_text('[xmpp]\njid = "not a jid"\n', encoding="utf-8")
    done = check(config)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "config: xmpp.jid: 'not a jid' is not a bare JID (user@domain)"
    ]
