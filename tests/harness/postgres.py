"""A private PostgreSQL for tests that stop and start their database server.

The machine's shared PostgreSQL (on 5432) is used by other tests and must never be stopped;
this one lives in a temporary directory of its own, listens on a free loopback port and on
a socket in that directory, and is removed with it.  PostgreSQL refuses to run as root, so
when the tests run as root the server runs as the ``postgres`` OS user (``runuser``), and
the directory belongs to that user.

    server = Postgres()
    server.start()          # initdb on first start, then pg_ctl start; bounded
    url = server.url()      # postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
    server.stop()           # pg_ctl stop -m fast; start() again brings it back
    server.remove()         # stop, and delete the directory
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
OS_USER = "postgres"


class PostgresError(RuntimeError):
    """The private PostgreSQL did not initialise, start or stop as asked."""


def _bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: [int(x) for x in Path(p).parts[-3].split(".") if x.isdigit()],
    )
    if not found:
        raise PostgresError("PostgreSQL's server binaries (/usr/lib/postgresql/*/bin) are missing")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Postgres:
    """One private PostgreSQL server (trust authentication, loopback only, no fsync)."""

    host = "127.0.0.1"
    user = "postgres"  # the database superuser initdb creates

    def __init__(self) -> None:
        self.bin = _bin_dir()
        # Not under pytest's tmp_path: /tmp/pytest-of-root is root's alone (mode 0700), and
        # the server user must be able to reach its data directory.
        self.root = Path(tempfile.mkdtemp(prefix="addinbot-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "server.log"
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            owner = pwd.getpwnam(OS_USER)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._initialised = False

    # -- running as the server's user -------------------------------------------------------

    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if self._as_root:
            command = ["runuser", "-u", OS_USER, "--", *command]
        try:
            return subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False,
                stdin=subprocess.DEVNULL, cwd=self.root,
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresError(f"{' '.join(command)} took over {timeout:.0f} s") from exc

    def _check(self, done: subprocess.CompletedProcess[str], what: str) -> None:
        if done.returncode != 0:
            raise PostgresError(
                f"{what} exited {done.returncode}: {(done.stdout + done.stderr).strip()}\n"
                f"{self.log_tail()}"
            )

    # -- lifecycle --------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def start(self) -> Self:
        if not self._initialised:
            done = self._run(
                self.bin / "initdb", "-D", str(self.data), "-U", self.user, "-A", "trust",
                "-E", "UTF8", "--no-sync", "--no-instructions", timeout=60,
            )
            self._check(done, "initdb")
            self._initialised = True
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses={self.host} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        done = self._run(
            self.bin / "pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options,
            "-w", "-t", str(int(START_TIMEOUT)), "start", timeout=START_TIMEOUT + 5,
        )
        self._check(done, "pg_ctl start")
        deadline = time.monotonic() + START_TIMEOUT
        while not self.accepting():
            if time.monotonic() > deadline:
                raise PostgresError(f"no connections on {self.port}\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    def accepting(self) -> bool:
        done = subprocess.run(
            [str(self.bin / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port)],
            check=False, timeout=10,
        )
        return done.returncode == 0

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop: `fast` disconnects clients and shuts down; `immediate` is a crash."""
        if not (self.data / "postmaster.pid").exists():
            return
        done = self._run(
            self.bin / "pg_ctl", "-D", str(self.data), "-m", mode, "-w",
            "-t", str(int(STOP_TIMEOUT)), "stop", timeout=STOP_TIMEOUT + 5,
        )
        self._check(done, "pg_ctl stop")

    def remove(self) -> None:
        """Stop (harmless when stopped) and delete the directory."""
        with contextlib.suppress(PostgresError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.remove()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join([f"--- {self.log_path} ---", *text.splitlines()[-lines:]])
