"""The test harness itself: a private Prosody (deploy/localprosody.py, the quick start's
launcher too) and real clients talking through it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from deploy import localprosody
from deploy.localprosody import Prosody, ProsodyError
from tests.harness.xmpp_client import TestClient

pytestmark = pytest.mark.xmpp

PASSWORD = "harness-pw"
ROOT = Path(__file__).resolve().parents[2]

Connect = Callable[[str], Awaitable[TestClient]]


@pytest.fixture(scope="module")
def prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prosody]:
    with Prosody(tmp_path_factory.mktemp("prosody")) as server:
        for user in ("alice", "bob"):
            server.register(user, PASSWORD)
        yield server
        assert server.log_errors() == []


@pytest.fixture
async def connect(prosody: Prosody) -> AsyncIterator[Connect]:
    """Connect a registered user; every client is stopped after the test."""
    clients: list[TestClient] = []

    async def make(user: str) -> TestClient:
        client = TestClient(f"{user}@{prosody.domain}", PASSWORD)
        clients.append(client)
        await client.start(prosody.host, prosody.port)
        return client

    yield make
    for client in clients:
        await client.stop()


def test_config_is_private_and_plaintext(prosody: Prosody) -> None:
    text = prosody.config_path.read_text()
    assert f"c2s_ports = {{ {prosody.port} }}" in text
    assert 'interfaces = { "127.0.0.1" }' in text
    assert "run_as_root = true" in text
    assert '"tls"' not in text
    assert prosody.running
    assert prosody.register("carol", PASSWORD) == f"carol@{prosody.domain}"
    assert (prosody.data_path / prosody.domain / "accounts" / "carol.dat").exists()


async def test_chat_message_arrives(connect: Connect, prosody: Prosody) -> None:
    alice = await connect("alice")
    bob = await connect("bob")

    alice.send_chat(f"bob@{prosody.domain}", "hello bob")
    msg = await bob.next_message()

    assert msg["type"] == "chat"
    assert msg["body"] == "hello bob"
    assert msg["from"].bare == f"alice@{prosody.domain}"
    await alice.expect_no_message(0.1)


async def test_ask_returns_the_reply(connect: Connect, prosody: Prosody) -> None:
    alice = await connect("alice")
    bob = await connect("bob")

    question = alice.loop.create_task(alice.ask(f"bob@{prosody.domain}", "ping?"))
    asked = await bob.next_message(predicate=lambda m: m["body"] == "ping?")
    bob.send_chat(str(asked["from"]), "pong!")

    assert await question == "pong!"


async def test_groupchat_message_arrives(connect: Connect, prosody: Prosody) -> None:
    room = f"harness-{uuid.uuid4().hex[:8]}@{prosody.muc}"
    alice = await connect("alice")
    bob = await connect("bob")
    await alice.join_room(room, "Alice")
    await bob.join_room(room, "Bob")

    alice.send_groupchat(room, "hello room")
    msg = await bob.next_message(predicate=lambda m: m["type"] == "groupchat")

    assert msg["body"] == "hello room"
    assert msg["from"].full == f"{room}/Alice"
    # The sender gets its own message back, as every occupant does.
    echo = await alice.next_message(predicate=lambda m: m["type"] == "groupchat")
    assert echo["body"] == "hello room"

    await bob.leave_room_wait(room, "Bob")
    alice.send_groupchat(room, "bob is gone")
    assert (await alice.next_message())["body"] == "bob is gone"
    await bob.expect_no_message(0.2, predicate=lambda m: m["type"] == "groupchat")


async def test_no_history_on_join(connect: Connect, prosody: Prosody) -> None:
    room = f"harness-{uuid.uuid4().hex[:8]}@{prosody.muc}"
    alice = await connect("alice")
    await alice.join_room(room, "Alice")
    alice.send_groupchat(room, "before bob")
    await alice.next_message()

    bob = await connect("bob")
    await bob.join_room(room, "Bob")

    await bob.expect_no_message(0.2)


async def test_wrong_password_fails_fast(prosody: Prosody) -> None:
    client = TestClient(f"alice@{prosody.domain}", "not-the-password")
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="authentication failed"):
        await client.start(prosody.host, prosody.port)
    assert time.monotonic() - started < 5
    await client.stop()


async def test_restart_keeps_accounts_and_port(connect: Connect, prosody: Prosody) -> None:
    port = prosody.port
    prosody.register("dave", PASSWORD)

    prosody.restart()

    assert prosody.port == port
    dave = await connect("dave")
    alice = await connect("alice")
    dave.send_chat(f"alice@{prosody.domain}", "after restart")
    assert (await alice.next_message())["body"] == "after restart"


def test_kill_then_start_again(tmp_path: Path) -> None:
    server = Prosody(tmp_path)
    server.start()
    server.register("erin", PASSWORD)
    server.kill()
    assert not server.running
    server.start()  # over a stale pidfile, same port
    try:
        assert (server.data_path / server.domain / "accounts" / "erin.dat").exists()
    finally:
        server.stop()
    assert server.log_errors() == []


async def test_extra_config_is_global(tmp_path: Path) -> None:
    # Appended after the MUC section, yet it must reach the VirtualHost: PLAIN goes away.
    with Prosody(tmp_path, extra_config='insecure_sasl_mechanisms = { "PLAIN" }') as server:
        server.register("henry", PASSWORD)
        client = TestClient(f"henry@{server.domain}", PASSWORD)
        with pytest.raises(ConnectionError, match="authentication failed"):
            await client.start(server.host, server.port)
        await client.stop()


def test_taken_port_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken, localprosody.free_port()])
        monkeypatch.setattr(localprosody, "free_port", lambda host: next(ports))
        with Prosody(tmp_path) as server:
            assert server.port != taken
            assert f"Failed to open server port {taken}" in server.log_path.read_text()
            assert server.log_errors() == []


def test_broken_config_raises_with_the_log(tmp_path: Path) -> None:
    server = Prosody(tmp_path, extra_config="this is not lua")
    with pytest.raises(ProsodyError, match="syntax error"):
        server.start()
    assert not server.running


def test_command_line(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "deploy/localprosody.py",  # as the quick start runs it: a script, no package
            "--workdir",
            str(tmp_path),
            "--accounts",
            "frank:pw1,grace:pw2",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT="), line
        port = int(line.removeprefix("PORT="))
        accounts = tmp_path / "data" / "localhost" / "accounts"
        assert sorted(p.name for p in accounts.iterdir()) == ["frank.dat", "grace.dat"]
        assert f"[127.0.0.1]:{port}" in (tmp_path / "prosody.log").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out == ""
    assert "Shutdown complete" in (tmp_path / "prosody.log").read_text()


def test_web_root_is_served_with_xmpp_over_websocket(tmp_path: Path) -> None:
    """deploy/screenshots.py's web client: the page over HTTP on loopback, and a WebSocket
    endpoint that speaks XMPP (an upgrade with the xmpp subprotocol is accepted)."""
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<p>web client here</p>", encoding="utf-8")
    with Prosody(tmp_path / "prosody", web_root=web) as server:
        assert server.http_port not in (0, server.port)
        page = _http(server.http_port, "GET /files/index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert page.startswith(b"HTTP/1.1 200")
        assert b"web client here" in page
        upgrade = _http(
            server.http_port,
            "GET /xmpp-websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: xmpp\r\n",
            until=b"\r\n\r\n",
        )
        assert upgrade.startswith(b"HTTP/1.1 101"), upgrade
        assert b"Sec-WebSocket-Protocol: xmpp" in upgrade
        assert server.log_errors() == []


def _http(port: int, request: str, until: bytes | None = None) -> bytes:
    """One request on loopback; the answer up to ``until``, or until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(
            (request + "Connection: close\r\n\r\n" if until is None else request + "\r\n").encode()
        )
        answer = b""
        while (chunk := sock.recv(4096)) and (until is None or until not in answer + chunk):
            answer += chunk
        return answer + chunk
