"""Secrets and transport: the bot's password never shows in its logs (even at DEBUG, where
slixmpp logs every stanza), its error output, the audit trail or the process list; server
certificates are verified (a self-signed one only with `ca_file`, never one for another
name), and "starttls" never falls back to plaintext.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.runner import Service
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import TestClient
from tests.integration.conftest import PASSWORD, jid
from tests.integration.test_faults import BotProcess, until

pytestmark = [pytest.mark.xmpp, pytest.mark.sqlite_only]


def bot_config(
    folder: Path, server: Prosody, *, user: str, password: str, tls: str = "plain",
    ca_file: Path | None = None, extra: str = "",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "addinbot.toml"
    ca_line = f'ca_file = "{ca_file}"' if ca_file is not None else ""
    path.write_text(
        f"""
[xmpp]
jid = "{user}@{server.domain}"
password = "{password}"
host = "127.0.0.1"
port = {server.port}
tls = "{tls}"
{ca_line}
nick = "AddinBot"
{extra}

[store]
url = "sqlite:///{folder}/addinbot.db"

[roles]
admins = ["admin@{server.domain}"]

[pools]
names = ["{server.muc}"]

[limits]
sender = 0
room = 0
""",
        encoding="utf-8",
    )
    return path


def forms_of(user: str, domain: str, password: str) -> list[str]:
    """The password as it could show: itself, and base64 of what SASL PLAIN sends."""
    plain = [f"\0{user}\0{password}", f"{user}@{domain}\0{user}\0{password}",
             f"\0{user}@{domain}\0{password}"]
    return [password, base64.b64encode(password.encode()).decode()] + [
        base64.b64encode(p.encode()).decode() for p in plain
    ]


def process_list() -> str:
    return subprocess.run(
        ["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True, timeout=10
    ).stdout


def files_of(folder: Path, pattern: str) -> str:
    return b"".join(p.read_bytes() for p in sorted(folder.glob(pattern))).decode("latin-1")


def serve_debug(config: str) -> None:
    """`addinbot run`, with an operator's DEBUG logging: everything, slixmpp included."""
    from bot.logs import configure_logging
    from bot.runner import serve

    settings = load_settings(Path(config))
    configure_logging(level=logging.DEBUG)
    logging.getLogger("slixmpp").setLevel(logging.DEBUG)  # stanzas too, SASL included
    sys.exit(asyncio.run(serve(settings)))


# --- the password ---------------------------------------------------------------------------


async def test_the_password_is_never_in_logs_audit_or_the_process_list(
    prosody: Prosody, tmp_path: Path
) -> None:
    user, password = "secretbot", f"pw-{secrets.token_hex(12)}"
    prosody.register(user, password)
    config = bot_config(tmp_path, prosody, user=user, password=password)
    leaks = forms_of(user, prosody.domain, password)
    bot_jid = jid(prosody, user)

    # As installed: `addinbot run --config FILE`, its command line and its log.
    with BotProcess(config, tmp_path / "run.log",
                    [str(Path(sys.executable).parent / "addinbot"), "run", "--config",
                     str(config)]) as bot:
        await bot.start()
        assert bot.process is not None
        ps = await asyncio.to_thread(process_list)
        assert f"{bot.process.pid} " in ps
        cmdline = await asyncio.to_thread(files_of, Path(f"/proc/{bot.process.pid}"), "cmdline")
        admin = TestClient(jid(prosody, "admin"), PASSWORD)
        await admin.start(prosody.host, prosody.port)
        try:
            for body in (f"register Sec https://sec.example.org/{password[:4]}", "list",
                         "show Sec", "audit", "frobnicate"):
                replies = [await admin.ask(bot_jid, body)]
        finally:
            await admin.stop()
        assert await bot.terminate() == 0
        run_log = bot.text()

    # With DEBUG logging, slixmpp's stanza log included.
    debug = BotProcess(config, tmp_path / "debug.log", [
        sys.executable, "-c",
        "import sys; from tests.integration.test_secrets import serve_debug; "
        "serve_debug(sys.argv[1])", str(config),
    ])
    with debug:
        await debug.start()
        assert await debug.terminate() == 0
    debug_log = debug.text()
    assert "SEND: <auth" in debug_log, "slixmpp's stanza log was not on: nothing was tested"
    assert 'mechanism="PLAIN">[redacted]</auth>' in debug_log

    audit = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "bot", "audit", "100", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert audit.returncode == 0, audit.stderr
    assert "register" in audit.stdout
    database = await asyncio.to_thread(files_of, tmp_path, "addinbot.db*")

    places = {
        "ps": ps, "cmdline": cmdline, "run log": run_log, "debug log": debug_log,
        "replies": "\n".join(replies), "audit": audit.stdout + audit.stderr,
        "database": database,
    }
    for where, text in places.items():
        for form in leaks:
            assert form not in text, f"the password shows in the {where} (as {form!r})"


@pytest.mark.parametrize(
    "config_text",
    [
        '[xmpp]\njid = "a@localhost"\npassword = "{pw}"\npassword_file = "/etc/hostname"\n',
        '[xmpp]\njid = "a@localhost"\npasswd = "{pw}"\n',
        '[xmpp]\njid = "a@localhost"\npassword = ["{pw}"]\n',
        '[xmpp]\njid = "a@localhost"\npassword = "{pw}"\ntls = "plain"\nhost = "x.example"\n',
        '[xmpp]\njid = "a@localhost"\npassword = "{pw}"\n[pools]\nnames = "{pw}"\n',
    ],
    ids=["both-forms", "misspelt-key", "not-a-string", "plain-remote", "bad-pools"],
)
def test_config_errors_never_echo_the_password(tmp_path: Path, config_text: str) -> None:
    password = f"pw-{secrets.token_hex(12)}"
    config = tmp_path / "bad.toml"
    config.write_text(config_text.replace("{pw}", password), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("config: "), done.stderr
    assert password not in done.stdout + done.stderr


async def test_a_refused_password_is_reported_but_not_shown(
    prosody: Prosody, tmp_path: Path
) -> None:
    wrong = f"pw-{secrets.token_hex(12)}"
    config = bot_config(tmp_path, prosody, user="addinbot", password=wrong)
    bot = BotProcess(config, tmp_path / "debug.log", [
        sys.executable, "-c",
        "import sys; from tests.integration.test_secrets import serve_debug; "
        "serve_debug(sys.argv[1])", str(config),
    ])
    with bot:
        await bot.start(ready="refused the bot's credentials")
        assert await bot.terminate() == 0
    log = bot.text()
    assert f"the server refused the bot's credentials for addinbot@{prosody.domain}" in log
    for form in forms_of("addinbot", prosody.domain, wrong):
        assert form not in log


# --- certificates ---------------------------------------------------------------------------


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) for `name`."""
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name}"],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key


class TlsProsody(Prosody):
    """The harness's Prosody with mod_tls, a certificate, and encryption required on c2s."""

    def __init__(self, workdir: Path, cert: Path, key: Path) -> None:
        super().__init__(workdir)
        self.cert, self.key = cert, key

    def config_text(self) -> str:
        text = super().config_text()
        # Replaced, not repeated: a repeated option breaks Prosody 0.12.3 (see Prosody).
        for old, new in (
            ('"roster"; "saslauth";', '"roster"; "saslauth"; "tls";'),
            ("c2s_require_encryption = false", "c2s_require_encryption = true"),
        ):
            assert text.count(old) == 1, old
            text = text.replace(old, new)
        return text + f'\nssl = {{ certificate = "{self.cert}"; key = "{self.key}"; }}\n'

    def authenticated(self, user: str) -> bool:
        return f"Authenticated as {user}@{self.domain}" in self._read_log()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TlsProsody]:
    cert, key = self_signed(tmp_path / "certs", "localhost")
    server = TlsProsody(tmp_path / "tls-prosody", cert, key)
    server.start()
    try:
        for user in ("addinbot", "admin"):
            server.register(user, PASSWORD)
        yield server
    finally:
        server.stop()


async def assert_refused(
    server: Prosody, config: Path, caplog: pytest.LogCaptureFixture, reason: str,
    user: str = "addinbot",
) -> None:
    """The bot is started, fails the way `reason` says, retries with back-off (one retry per
    failure), never authenticates, and stops trying once stopped."""
    caplog.set_level(logging.INFO)
    service = Service(load_settings(config))
    loop = asyncio.get_running_loop()
    attempts: list[float] = []
    service.edge.add_event_handler("connecting", lambda _event: attempts.append(loop.time()))
    await service.start()
    try:
        await until(lambda: reason in caplog.text, f"{reason!r} in the log", 10)
        await asyncio.sleep(3.5)  # the first retries (after 1 s, then 2 s) fail the same way
        assert not service.edge.online.is_set()
        retries = caplog.text.count("reconnecting in")
        assert len(attempts) - 1 <= retries <= len(attempts), (attempts, caplog.text)
    finally:
        await service.stop()
    stopped_with = len(attempts)
    await asyncio.sleep(2.5)
    assert len(attempts) == stopped_with, "a stopped bot tried to connect again"
    assert f"Authenticated as {user}@" not in server._read_log()
    assert "connected as" not in caplog.text


async def test_a_self_signed_server_is_refused_without_ca_file_and_accepted_with_it(
    tls_server: TlsProsody, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = bot_config(tmp_path / "no-ca", tls_server, user="addinbot", password=PASSWORD,
                        tls="starttls")
    await assert_refused(
        tls_server, config, caplog, "certificate verify failed: self-signed certificate"
    )

    config = bot_config(tmp_path / "ca", tls_server, user="addinbot", password=PASSWORD,
                        tls="starttls", ca_file=tls_server.cert)
    service = Service(load_settings(config))
    await service.start()
    admin = TestClient(jid(tls_server, "admin"), PASSWORD)
    admin.enable_starttls, admin.enable_plaintext = True, False
    admin.ca_certs = tls_server.cert
    try:
        await asyncio.wait_for(service.edge.online.wait(), 10)
        assert service.edge.transport is not None
        assert service.edge.transport.get_extra_info("ssl_object") is not None
        assert tls_server.authenticated("addinbot")
        await admin.start(tls_server.host, tls_server.port)
        reply = await admin.ask(jid(tls_server, "addinbot"), "list")
        assert reply == f"No add-ins are registered in {tls_server.muc}."
    finally:
        await admin.stop()
        await service.stop()


async def test_a_certificate_for_another_name_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = self_signed(tmp_path / "certs", "wrong.example")
    server = TlsProsody(tmp_path / "tls-prosody", cert, key)
    server.start()
    try:
        server.register("addinbot", PASSWORD)
        config = bot_config(tmp_path, server, user="addinbot", password=PASSWORD,
                            tls="starttls", ca_file=cert)  # trusted, but not for "localhost"
        await assert_refused(
            server, config, caplog, "Hostname mismatch, certificate is not valid for 'localhost'"
        )
    finally:
        server.stop()


async def test_starttls_never_falls_back_to_plaintext(
    prosody: Prosody, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server (or a man in the middle) that offers no STARTTLS gets no credentials."""
    prosody.register("tlsbot", PASSWORD)
    config = bot_config(tmp_path, prosody, user="tlsbot", password=PASSWORD, tls="starttls")
    await assert_refused(prosody, config, caplog, "No appropriate login method", user="tlsbot")
