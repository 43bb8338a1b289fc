"""A private Prosody (Debian's 0.12): plaintext c2s on a free loopback port.

The quick start (deploy/quickstart.sh) runs it, and the tests import it (``deploy`` is a
namespace package from the repository's root). It needs nothing but the standard library
and Prosody itself.

Every instance has its own config, data and log under ``workdir``; nothing under /etc/prosody
or /var/lib/prosody is read or written.  From the shell::

    python3 deploy/localprosody.py --workdir DIR --accounts alice:pw,bob:pw

prints ``PORT=<port>`` on stdout once the server is ready and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from pathlib import Path
from types import FrameType, TracebackType
from typing import Self

PROSODY_BIN = "prosody"
PROSODYCTL_BIN = "prosodyctl"

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
REGISTER_TIMEOUT = 10.0
# A freshly picked port can be taken by someone else before Prosody binds it.
START_ATTEMPTS = 3


# Servers still running when the interpreter exits (a test that forgot stop()) are stopped.
_running: weakref.WeakSet[LocalServer] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_running):
        server.stop()


class ProsodyError(RuntimeError):
    """Prosody did not start, stop or register as asked."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def lua_string(value: str) -> str:
    """A Lua string literal for ``value``."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


class LocalServer:
    """What a private XMPP server of the quick start and the tests is, whichever server it
    runs: one process of its own, started as the current user, its log, and a loopback port
    picked free (and picked again if someone takes it first). A subclass says how to start
    it once (`_start_once`) and what is missing to run it (`_missing`)."""

    host: str = "127.0.0.1"
    name = "the server"
    error: type[RuntimeError] = RuntimeError
    stop_timeout = STOP_TIMEOUT

    def __init__(self, workdir: Path, port: int | None, log_path: Path, stdout_path: Path) -> None:
        self.workdir = Path(workdir).resolve()
        # None: pick a free one at the first start(); kept across restart().
        self.port: int = port or 0
        self._fixed_port = port is not None
        self.log_path = log_path
        self.stdout_path = stdout_path
        self._proc: subprocess.Popen[bytes] | None = None
        # Ports found taken at start (and retried elsewhere): their errors are not ours.
        self._abandoned_ports: set[int] = set()

    def _missing(self) -> str | None:
        """What is not installed, or None."""
        raise NotImplementedError

    def _start_once(self) -> bool:
        """One start; False if the port was taken, raises `error` on any other failure."""
        raise NotImplementedError

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> Self:
        """Start the server and wait (bounded) until its c2s port takes connections."""
        if self.running:
            raise self.error(f"{self.name} is already running")
        missing = self._missing()
        if missing is not None:
            raise self.error(missing)
        attempts = 1 if (self._fixed_port or self.port) else START_ATTEMPTS
        for attempt in range(1, attempts + 1):
            if not self._fixed_port and (attempt > 1 or not self.port):
                self.port = free_port(self.host)
            _running.add(self)  # stopped at exit, should a test forget to
            if self._start_once():
                return self
        raise self.error(
            f"{self.name} could not bind a c2s port after {attempts} attempt(s)\n"
            f"{self.log_tail()}"
        )

    def stop(self) -> None:
        """SIGTERM, wait a few seconds, then SIGKILL.  Harmless when not running."""
        self._terminate()

    def kill(self) -> None:
        """SIGKILL at once (for fault tests): no clean shutdown, the clients see a reset."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def restart(self) -> Self:
        """Stop (if running) and start again on the same port with the same data."""
        self.stop()
        return self.start()

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- logs -------------------------------------------------------------------------------

    def _read_log(self, offset: int = 0) -> str:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log and of anything it printed, for error messages."""
        parts = [f"--- {self.log_path} (last {lines} lines) ---"]
        parts += self._read_log().splitlines()[-lines:]
        if self.stdout_path.exists():
            printed = self.stdout_path.read_text("utf-8", "replace").splitlines()[-lines:]
            if printed:
                parts += [f"--- {self.stdout_path} ---", *printed]
        return "\n".join(parts)


class Prosody(LocalServer):
    """One private Prosody process, started as the current user (root is fine).

    ``extra_config`` is Lua appended verbatim in the global section.  It must not set an
    option that the generated config sets already: when the config's path is long (pytest's
    tmp_path is), Prosody 0.12.3 fails to read the file while warning of the duplicate
    (configmanager.lua:137, "bad argument #2 to 'format'").
    It may open host sections of its own; re-opening the MUC needs its module:
    ``Component "conference.localhost" "muc"``.
    """

    name = "Prosody"
    error = ProsodyError

    def __init__(
        self,
        workdir: Path,
        domain: str = "localhost",
        muc: str = "conference.localhost",
        extra_config: str = "",
        port: int | None = None,
        web_root: Path | None = None,
    ) -> None:
        workdir = Path(workdir).resolve()
        super().__init__(workdir, port, workdir / "prosody.log", workdir / "prosody.out")
        self.domain = domain
        self.muc = muc
        self.extra_config = extra_config
        self.config_path = self.workdir / "prosody.cfg.lua"
        self.data_path = self.workdir / "data"
        self.pid_path = self.workdir / "prosody.pid"
        # With a web root: an HTTP port on loopback serving that folder at /files/ and
        # XMPP over WebSocket at /xmpp-websocket, for a web client (deploy/screenshots.py).
        self.web_root = Path(web_root).resolve() if web_root is not None else None
        self.http_port = 0

    # -- configuration ----------------------------------------------------------------------

    def config_text(self) -> str:
        """The Lua config for the current port."""
        modules = '"roster"; "saslauth"; "disco"; "carbons"; "ping"'
        http_ports = ""
        web = ""
        if self.web_root is not None:
            modules += '; "websocket"; "http_files"'
            http_ports = f" {self.http_port} "
            web = f"""
-- A web client on loopback: plain HTTP is as private as the plaintext c2s port here.
http_interfaces = {{ "127.0.0.1" }}
http_default_host = {lua_string(self.domain)}
http_files_dir = {lua_string(str(self.web_root))}
consider_websocket_secure = true
"""
        return f"""\
-- Generated by deploy/localprosody.py; do not edit.
run_as_root = true
daemonize = false
pidfile = {lua_string(str(self.pid_path))}
data_path = {lua_string(str(self.data_path))}
-- An empty directory of our own: never look at /etc/prosody/certs.
certificates = {lua_string(str(self.workdir / "certs"))}
log = {{
    info = {lua_string(str(self.log_path))};
    error = "/dev/stderr";
}}
admins = {{}}

interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {self.port} }}
c2s_direct_tls_ports = {{}}
legacy_ssl_ports = {{}}
s2s_ports = {{}}
s2s_direct_tls_ports = {{}}
component_ports = {{}}
http_ports = {{{http_ports}}}
https_ports = {{}}

-- Plaintext on loopback only; no TLS module is loaded at all.
c2s_require_encryption = false
s2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"

-- Not loaded: tls, register, limits, mam: no certificates, no in-band registration,
-- no rate limiting, no archive.
modules_enabled = {{ {modules} }}
modules_disabled = {{ "s2s"; "s2s_auth_certs" }}
{web}
-- The table form ends each section, so what follows is global again.
VirtualHost {lua_string(self.domain)} {{}}

Component {lua_string(self.muc)} "muc" {{
    muc_room_locking = false;
    muc_room_default_persistent = true;
    restrict_room_creation = false;
    muc_room_default_history_length = 20;
}}

-- extra_config, in the global section:
{self.extra_config}
"""

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_path.mkdir(mode=0o750, exist_ok=True)
        (self.workdir / "certs").mkdir(exist_ok=True)
        self.config_path.write_text(self.config_text(), encoding="utf-8")
        return self.config_path

    # -- lifecycle --------------------------------------------------------------------------

    def _missing(self) -> str | None:
        if shutil.which(PROSODY_BIN) is None:
            return "prosody is not installed (apt-get install -y prosody)"
        return None

    def _start_once(self) -> bool:
        """One start; False if the port was taken, raises on any other failure."""
        if self.web_root is not None:
            self.http_port = free_port(self.host)
        self.write_config()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.stdout_path.open("ab") as out:
            self._proc = subprocess.Popen(
                [PROSODY_BIN, "--config", str(self.config_path), "-F"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                cwd=self.workdir,
                start_new_session=True,  # a Ctrl-C meant for us must not reach it first
            )
        activated = f"Activated service 'c2s' on [{self.host}]:{self.port}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise ProsodyError(f"Prosody exited with {code} at start\n{self.log_tail()}")
            new_log = self._read_log(log_offset)
            if "Failed to open server port" in new_log:
                self._terminate()
                self._abandoned_ports.add(self.port)
                return False
            if activated in new_log and self._port_open():
                return True
            time.sleep(0.02)
        self._terminate()
        raise ProsodyError(
            f"Prosody did not open {self.host}:{self.port} in {START_TIMEOUT:.0f} s\n"
            f"{self.log_tail()}"
        )

    def _port_open(self) -> bool:
        """True once Prosody answers a stream header on the c2s port.

        A bare connect-and-close is not enough, and is not harmless either: Prosody 0.12.3
        then sometimes logs "Error calling onconnect ... (field 'conn')"."""
        header = (
            f"<?xml version='1.0'?><stream:stream to='{self.domain}' xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
        )
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.sendall(header.encode())
                answer = b""
                while b"</stream:features>" not in answer:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return False
                    answer += chunk
                sock.sendall(b"</stream:stream>")
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(4096):  # until Prosody closes its side
                    pass
                return True
        except OSError:
            return False

    # -- accounts ---------------------------------------------------------------------------

    def register(self, user: str, password: str) -> str:
        """Create (or reset the password of) ``user`` and return the bare JID."""
        if not self.config_path.exists():
            self.write_config()
        cmd = [
            PROSODYCTL_BIN,
            "--config",
            str(self.config_path),
            "register",
            user,
            self.domain,
            password,
        ]
        try:
            done = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=REGISTER_TIMEOUT,
                cwd=self.workdir,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ProsodyError(f"prosodyctl register {user} took over {exc.timeout} s") from exc
        # prosodyctl prints its problems and exits 1; it is silent on success.
        output = (done.stdout + done.stderr).strip()
        if done.returncode != 0 or output:
            raise ProsodyError(
                f"prosodyctl register {user}@{self.domain} exited {done.returncode}: {output}"
            )
        return f"{user}@{self.domain}"

    # -- logs -------------------------------------------------------------------------------

    def log_errors(self) -> list[str]:
        """Log lines at level error (Prosody's format: date, source, level, message), but for
        the ports that start() found taken and left."""
        retried = tuple(f"Failed to open server port {port} " for port in self._abandoned_ports)
        return [
            line
            for line in self._read_log().splitlines()
            if "\terror\t" in line and not any(text in line for text in retried)
        ]


# -- command line ---------------------------------------------------------------------------


def _parse_accounts(text: str) -> list[tuple[str, str]]:
    accounts = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        user, sep, password = item.partition(":")
        if not sep or not user or not password:
            raise argparse.ArgumentTypeError(f"expected user:password, got {item!r}")
        accounts.append((user, password))
    return accounts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="deploy/localprosody.py",
        description="Run a private plaintext Prosody on loopback until SIGTERM/SIGINT; "
        "prints PORT=<port> on stdout once it takes connections.",
    )
    parser.add_argument("--workdir", type=Path, required=True, help="config, data and log")
    parser.add_argument(
        "--accounts",
        type=_parse_accounts,
        default=[],
        help="user:password[,user:password...] to register",
    )
    parser.add_argument("--domain", default="localhost")
    parser.add_argument("--muc", default="conference.localhost")
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    args = parser.parse_args(argv)

    stop_signal: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_signal.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    server = Prosody(args.workdir, domain=args.domain, muc=args.muc, port=args.port)
    try:
        server.start()
        for user, password in args.accounts:
            server.register(user, password)
        print(f"PORT={server.port}", flush=True)
        print(
            f"prosody: {server.host}:{server.port} domain={server.domain} muc={server.muc} "
            f"log={server.log_path}",
            file=sys.stderr,
            flush=True,
        )
        while not stop_signal:
            if not server.running:
                print(f"prosody died\n{server.log_tail()}", file=sys.stderr, flush=True)
                return 1
            time.sleep(0.2)
        return 0
    except ProsodyError as exc:
        print(exc, file=sys.stderr, flush=True)
        return 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
