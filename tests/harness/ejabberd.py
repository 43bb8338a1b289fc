"""A private ejabberd (Debian's 23.01) for tests: plaintext c2s on a free loopback port.

The same interface as tests/harness/prosody.py (start, stop, kill, restart, register,
domain, muc, host, port, log_errors), so the integration fixtures can run on either server
(ADDINBOT_TEST_XMPP=ejabberd, tests/integration/conftest.py).

Its config is built from deploy/ejabberd/addinbot.yml, the snippet operators merge into
their ejabberd.yml: that snippet's ``acl``, ``shaper_rules`` and ``modules`` are merged into
a small base that stands in for Debian's default ejabberd.yml (without its TLS listeners,
HTTP, STUN and MQTT), with example.org replaced by the test's domain.

Every instance has its own config, Mnesia spool, logs, Erlang node name and cookie under
``workdir``; nothing under /etc/ejabberd or /var/lib/ejabberd is read or written. The node
is started with ``erl`` directly, as the current user (root is fine), not through
ejabberdctl, which as root re-runs itself as the ``ejabberd`` user with that user's HOME
(and cookie) and reads /etc/ejabberd/ejabberdctl.cfg. Accounts are made with ejabberd_ctl
(what ``ejabberdctl register`` runs) on a hidden node of the same cookie.
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from deploy.localprosody import LocalServer

ERL_BIN = "erl"
ERL_LIBS = "/usr/lib/x86_64-linux-gnu"  # where Debian's package puts ejabberd-23.01/
SNIPPET = Path(__file__).resolve().parents[2] / "deploy" / "ejabberd" / "addinbot.yml"
EXAMPLE_DOMAIN = "example.org"

START_TIMEOUT = 30.0  # a first start creates the Mnesia tables: ~3 s here
STOP_TIMEOUT = 10.0
CTL_TIMEOUT = 20.0
START_ATTEMPTS = 3

_numbers = itertools.count(1)


class EjabberdError(RuntimeError):
    """ejabberd did not start, stop or register as asked."""


def snippet_for(domain: str) -> dict[str, Any]:
    """deploy/ejabberd/addinbot.yml as an operator would merge it, for ``domain``."""
    text = SNIPPET.read_text(encoding="utf-8")
    assert EXAMPLE_DOMAIN in text
    loaded: dict[str, Any] = yaml.safe_load(text.replace(EXAMPLE_DOMAIN, domain))
    return loaded


def merge(base: dict[str, Any], snippet: dict[str, Any]) -> dict[str, Any]:
    """The snippet's top-level maps merged into the base's maps of the same name, key by key
    (a key the snippet sets replaces the base's: e.g. the whole mod_muc entry)."""
    merged = dict(base)
    for section, entries in snippet.items():
        merged[section] = {**base.get(section, {}), **entries}
    return merged


class Ejabberd(LocalServer):
    """One private ejabberd node, started as the current user."""

    name = "ejabberd"
    error = EjabberdError
    stop_timeout = STOP_TIMEOUT

    def __init__(
        self,
        workdir: Path,
        domain: str = "localhost",
        muc: str = "conference.localhost",
        port: int | None = None,
    ) -> None:
        workdir = Path(workdir).resolve()
        log_dir = workdir / "logs"
        super().__init__(workdir, port, log_dir / "ejabberd.log", workdir / "ejabberd.out")
        self.domain = domain
        self.muc = muc
        self.config_path = self.workdir / "ejabberd.yml"
        self.data_path = self.workdir / "spool"  # Mnesia: accounts, rooms
        self.log_dir = log_dir
        # The Erlang cookie lives in this HOME, never on a command line; the node name is
        # unique per process and instance (Mnesia's data belongs to it: kept on restart).
        self.home = self.workdir / "home"
        self.node = f"addinbot_test_{os.getpid()}_{next(_numbers)}_{secrets.token_hex(3)}"

    # -- configuration ----------------------------------------------------------------------

    def base_config(self) -> dict[str, Any]:
        """What Debian's ejabberd.yml would give, cut to plaintext c2s on one loopback port."""
        return {
            "loglevel": "info",
            "hosts": [self.domain],
            "listen": [
                {
                    "port": self.port,
                    "ip": self.host,
                    "module": "ejabberd_c2s",
                    "max_stanza_size": 262144,  # Debian's default
                    "shaper": "c2s_shaper",
                    "access": "c2s",
                    # Plaintext on loopback only: no certificate, no STARTTLS.
                    "starttls": False,
                    "starttls_required": False,
                }
            ],
            "auth_method": "internal",
            "acl": {
                # Debian's default names one admin; none of the test accounts is it.
                "admin": {"user": [f"server-admin@{self.domain}"]},
                "local": {"user_regexp": ""},
            },
            "access_rules": {
                "c2s": {"allow": "all"},
                "muc_create": {"allow": "local"},
            },
            "shaper": {"normal": {"rate": 3000, "burst_size": 20000}, "fast": 200000},
            "shaper_rules": {"c2s_shaper": [{"none": "admin"}, "normal"]},
            "modules": {
                "mod_disco": {},
                "mod_ping": {},
                "mod_roster": {},
                "mod_carboncopy": {},
                "mod_muc": {"hosts": [self.muc]},
            },
        }

    def config(self) -> dict[str, Any]:
        return merge(self.base_config(), snippet_for(self.domain))

    def write_config(self) -> Path:
        for folder in (self.workdir, self.data_path, self.log_dir, self.home):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16), encoding="ascii")
            cookie.chmod(0o400)
        text = "# Generated by tests/harness/ejabberd.py; do not edit.\n"
        text += yaml.safe_dump(self.config(), sort_keys=False)
        self.config_path.write_text(text, encoding="utf-8")
        return self.config_path

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.home),
            "ERL_LIBS": ERL_LIBS,
            "EJABBERD_CONFIG_PATH": str(self.config_path),
            "EJABBERD_LOG_PATH": str(self.log_path),
            "ERL_CRASH_DUMP": str(self.log_dir / "erl_crash.dump"),
            "CONTRIB_MODULES_PATH": str(self.home / "modules"),
        }

    # -- lifecycle --------------------------------------------------------------------------

    def _missing(self) -> str | None:
        if shutil.which(ERL_BIN) is None or not any(Path(ERL_LIBS).glob("ejabberd-*")):
            return "ejabberd is not installed (apt-get install -y ejabberd)"
        return None

    def _start_once(self) -> bool:
        """One start; False if the port was taken, raises on any other failure."""
        self.write_config()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        command = [
            ERL_BIN, "-sname", f"{self.node}@localhost", "-noinput",
            "-mnesia", "dir", f'"{self.data_path}"', "-s", "ejabberd",
        ]
        with self.stdout_path.open("ab") as out:
            self._proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.data_path, env=self._env(), start_new_session=True,
            )
        accepting = f"Start accepting TCP connections at {self.host}:{self.port} "
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise EjabberdError(f"ejabberd exited with {code} at start\n{self.log_tail()}")
            new_log = self._read_log(log_offset)
            if "eaddrinuse" in new_log:
                self._terminate()
                self._abandoned_ports.add(self.port)
                return False
            if "Failed to start ejabberd" in new_log:  # the VM would linger: stop it
                self._terminate()
                raise EjabberdError(f"ejabberd did not start\n{self.log_tail()}")
            if accepting in new_log and self._port_open():
                return True
            time.sleep(0.05)
        self._terminate()
        raise EjabberdError(
            f"ejabberd did not open {self.host}:{self.port} in {START_TIMEOUT:.0f} s\n"
            f"{self.log_tail()}"
        )

    def _port_open(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL at once (for fault tests): no clean shutdown, the clients see a reset.

        The accounts are written out first: ejabberd keeps them in a dets file (Mnesia's
        disc_only table "passwd") whose latest rows a SIGKILL would lose, while Prosody
        writes each account's file at once."""
        if self.running:
            self._erl_eval(f"rpc:call({self._node_atom}, dets, sync, [passwd])")
        super().kill()

    # -- accounts ---------------------------------------------------------------------------

    @property
    def _node_atom(self) -> str:
        return f"'{self.node}@localhost'"

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run an ejabberdctl command against this node (from a hidden node of its own)."""
        return self._run_erl(
            "-s", "ejabberd_ctl", "-extra", f"{self.node}@localhost", *args, what=args[0]
        )

    def _erl_eval(self, expression: str) -> subprocess.CompletedProcess[str]:
        """Evaluate an Erlang expression on a hidden node of the same cookie, then halt."""
        return self._run_erl("-eval", f"{expression}, halt().", what="erl -eval")

    def _run_erl(self, *args: str, what: str) -> subprocess.CompletedProcess[str]:
        command = [
            ERL_BIN, "-sname", f"ctl_{self.node}_{secrets.token_hex(3)}@localhost",
            "-hidden", "-noinput", *args,
        ]
        try:
            return subprocess.run(
                command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=CTL_TIMEOUT, cwd=self.workdir, env=self._env(), check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EjabberdError(f"{what} took over {exc.timeout} s") from exc

    def register(self, user: str, password: str) -> str:
        """Create (or reset the password of) ``user`` and return the bare JID."""
        done = self.ctl("register", user, self.domain, password)
        if done.returncode != 0 and "already registered" in done.stdout + done.stderr:
            # change_password needs mod_admin_extra; unregister is ejabberd's own.
            self.ctl("unregister", user, self.domain)
            done = self.ctl("register", user, self.domain, password)
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()
            raise EjabberdError(
                f"ejabberdctl register {user}@{self.domain} exited {done.returncode}: {output}"
            )
        return f"{user}@{self.domain}"

    # -- logs -------------------------------------------------------------------------------

    def log_errors(self) -> list[str]:
        """Log lines at level error or critical, but for the ports start() found taken."""
        retried = tuple(f":{port}" for port in self._abandoned_ports)
        return [
            line
            for line in self._read_log().splitlines()
            if ("[error]" in line or "[critical]" in line)
            and not ("eaddrinuse" in line and any(text in line for text in retried))
        ]
