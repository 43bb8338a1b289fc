"""Interoperability: a client that is not slixmpp talks to the bot.

go-sendxmpp (Debian's package; Go, on the go-xmpp library) sends a direct-message command
to the bot, and a second go-sendxmpp in listen mode (`-l`) prints the bot's answer.

go-sendxmpp 0.5.6 will not authenticate over an unencrypted connection ("refusing to
authenticate over unencrypted TCP connection") and has no switch to allow it, so this test's
Prosody offers STARTTLS with a throwaway certificate for localhost. go-sendxmpp verifies it
through SSL_CERT_FILE (Go's crypto/x509 reads it on Linux), and the bot through
xmpp.ca_file with tls = "starttls" - its path for a server with a private CA.

The same server checks `addinbot check` over STARTTLS: with and without the right CA.

go-sendxmpp missing is a failure, not a skip: CI installs it (tests/run.sh).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot import addins
from bot.config import load_settings
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import TestClient
from tests.integration.conftest import PASSWORD, BotHandle, jid, write_config

pytestmark = pytest.mark.xmpp

GO_SENDXMPP = "go-sendxmpp"
URL = "https://go.example.org/panel"
ANSWER_TIMEOUT_S = 15.0


class TlsProsody(Prosody):
    """The harness's private Prosody, also offering STARTTLS with a certificate for its domain
    (made with openssl, which Prosody's package brings along)."""

    def __init__(self, workdir: Path) -> None:
        tls = 'VirtualHost "localhost" {\n    modules_enabled = { "tls" };\n}\n'
        super().__init__(workdir, extra_config=tls)

    def encrypted_logins(self) -> list[str]:
        """The JIDs that authenticated on a stream encrypted with TLS, from the log."""
        encrypted: set[str] = set()
        logins: list[str] = []
        for line in self.log_tail(100_000).splitlines():
            parts = line.split("\t")
            if len(parts) != 3:
                continue
            session, message = parts[0].split()[-1], parts[2]
            if message.startswith("Stream encrypted"):
                encrypted.add(session)
            elif message.startswith("Authenticated as ") and session in encrypted:
                logins.append(message.removeprefix("Authenticated as "))
        return logins

    @property
    def certificate(self) -> Path:
        return self.workdir / "certs" / f"{self.domain}.crt"

    def write_config(self) -> Path:
        path = super().write_config()
        if not self.certificate.exists():  # certs/DOMAIN.crt and .key: Prosody finds them
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", f"/CN={self.domain}", "-addext", f"subjectAltName=DNS:{self.domain}",
                 "-keyout", str(self.certificate.with_suffix(".key")),
                 "-out", str(self.certificate)],
                check=True, capture_output=True, timeout=60,
            )
        return path


@pytest.fixture(scope="module")
def go_sendxmpp() -> str:
    path = shutil.which(GO_SENDXMPP)
    if path is None:
        pytest.fail(
            "go-sendxmpp is not installed: apt-get install -y go-sendxmpp "
            "(tests/run.sh installs it; the interoperability test needs it)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def tls_prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsProsody]:
    server = TlsProsody(tmp_path_factory.mktemp("tls-prosody"))
    server.start()
    for user in ("addinbot", "admin", "watcher"):
        server.register(user, PASSWORD)
    yield server
    server.stop()


@pytest.fixture
async def tls_bot(tls_prosody: TlsProsody, tmp_path: Path) -> AsyncIterator[BotHandle]:
    config = write_config(tls_prosody, tmp_path)
    text = config.read_text(encoding="utf-8").replace(
        'tls = "plain"', f'tls = "starttls"\nca_file = "{tls_prosody.certificate}"'
    )
    config.write_text(text, encoding="utf-8")
    handle = BotHandle(load_settings(config))
    await handle.start()
    yield handle
    await handle.stop()


def go_args(go: str, server: Prosody, user: str) -> list[str]:
    return [go, "-u", jid(server, user), "-p", PASSWORD, "-j", f"{server.host}:{server.port}"]


def go_env(server: TlsProsody) -> dict[str, str]:
    return {**os.environ, "SSL_CERT_FILE": str(server.certificate), "HOME": str(server.workdir)}


async def listening(output: asyncio.StreamReader, server: TlsProsody) -> list[str]:
    """Return once `go-sendxmpp -l` is online: it has printed a message sent to it.

    Nothing is stored for offline users here, so a message sent too early is lost; the
    watcher sends one every half second until one comes out."""
    watcher = TestClient(jid(server, "watcher"), PASSWORD)
    await watcher.start(server.host, server.port)
    seen: list[str] = []
    try:
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            while not any("watcher@localhost: are you there?" in line for line in seen):
                watcher.send_chat(jid(server, "admin"), "are you there?")
                with contextlib.suppress(TimeoutError):
                    raw = await asyncio.wait_for(output.readline(), 0.5)
                    assert raw, "go-sendxmpp -l exited"
                    seen.append(raw.decode().rstrip("\n"))
    except TimeoutError:
        pytest.fail(f"go-sendxmpp -l did not come online; it printed {seen!r}")
    finally:
        await watcher.stop()
    return seen


async def test_go_sendxmpp_sends_a_command_and_reads_the_answer(
    go_sendxmpp: str, tls_prosody: TlsProsody, tls_bot: BotHandle
) -> None:
    server = tls_prosody
    bot_jid = jid(server, "addinbot")
    listener = await asyncio.create_subprocess_exec(
        *go_args(go_sendxmpp, server, "admin"), "-l",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=go_env(server),
    )
    try:
        assert listener.stdout is not None
        seen = await listening(listener.stdout, server)
        sender = await asyncio.create_subprocess_exec(
            *go_args(go_sendxmpp, server, "admin"), bot_jid,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=go_env(server),
        )
        command = f'register "Go Ticker" {URL}'
        out, err = await asyncio.wait_for(sender.communicate(command.encode()), 30)
        assert sender.returncode == 0, (out + err).decode(errors="replace")

        expected = f"{bot_jid}: Registered “Go Ticker” in {server.muc}: {URL}"
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT_S):
                while not any(line.endswith(expected) for line in seen):
                    raw = await listener.stdout.readline()
                    if not raw:
                        break
                    seen.append(raw.decode().rstrip("\n"))
        except TimeoutError:
            pass
        assert any(line.endswith(expected) for line in seen), (
            f"go-sendxmpp -l printed {seen!r}, not the answer {expected!r}"
        )
    finally:
        if listener.returncode is None:
            listener.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listener.wait(), 5)
        if listener.returncode is None:
            listener.kill()
            await listener.wait()

    # The bot and both go-sendxmpp sessions (listener, sender) logged in over TLS.
    assert server.encrypted_logins().count(jid(server, "admin")) >= 2
    assert jid(server, "addinbot") in server.encrypted_logins()
    assert tls_bot.service is not None
    page = addins.list_addins(tls_bot.service.store, pool=server.muc)
    assert [(name, url) for name, url, _uses in page.items] == [("Go Ticker", URL)]


def test_check_verifies_the_servers_certificate(tls_prosody: TlsProsody, tmp_path: Path) -> None:
    """`addinbot check` over STARTTLS: fine with the server's CA, a clear line without it,
    and a clear line when tls says direct TLS to a STARTTLS port."""
    server = tls_prosody
    where = f"{server.host}:{server.port}"

    def check(tls: str) -> subprocess.CompletedProcess[str]:
        config = write_config(server, tmp_path)
        config.write_text(config.read_text(encoding="utf-8").replace('tls = "plain"', tls))
        return subprocess.run(
            [sys.executable, "-m", "bot", "check", "--config", str(config), "--timeout", "5"],
            capture_output=True, text=True, timeout=60, check=False,
        )

    done = check(f'tls = "starttls"\nca_file = "{server.certificate}"')
    assert done.returncode == 0, done.stderr
    assert f'xmpp: ok: authenticated as addinbot@localhost at {where} (tls = "starttls")' in (
        done.stdout
    )
    done = check('tls = "starttls"')
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"xmpp: TLS with {where} failed: self-signed certificate (the certificate must be "
        "valid for localhost; set xmpp.ca_file for a private CA)"
    ]
    done = check(f'tls = "direct"\nca_file = "{server.certificate}"')
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f'xmpp: TLS with {where} failed: WRONG_VERSION_NUMBER (is tls = "direct" what the '
        "server speaks on this port?)"
    ]
