"""Child processes of the benchmark: JSON-line workers, the bot itself, CPU accounting."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import psutil

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[2]
PY_SPY = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")


class WorkerError(RuntimeError):
    pass


class Worker:
    """A child that prints one JSON object per line and reads commands the same way."""

    def __init__(self, name: str, argv: list[str], log_dir: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 60.0) -> dict[str, Any]:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=ROOT, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=self.log_path.open("ab"),
        )
        return await self.read(timeout)

    async def read(self, timeout: float) -> dict[str, Any]:
        assert self.proc is not None
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            raise WorkerError(f"{self.name}: no answer within {timeout:.0f} s "
                              f"(log: {self.log_path})") from None
        if not line:
            raise WorkerError(f"{self.name} exited; its log ({self.log_path}):\n{self.tail()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def tell(self, command: dict[str, Any]) -> None:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())

    async def ask(self, command: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        self.tell(command)
        return await self.read(timeout)

    async def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(Exception):
            assert proc.stdin is not None
            proc.stdin.write(b'{"op": "quit"}\n')
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def write_bot_config(
    path: Path, *, port: int, db_url: str, admins: list[str], pools: list[str],
    user: str = "addinbot", password: str, nick: str = "AddinBot",
) -> Path:
    """The bot's TOML for the benchmark server; its own command limits off (if it has any):
    the measurer sends thousands of commands in a row on purpose."""
    limits = "\n[limits]\nsender = 0\nroom = 0\n" if "limits" in Settings.model_fields else ""
    path.write_text(
        f"""[xmpp]
jid = "{user}@localhost"
password = "{password}"
host = "127.0.0.1"
port = {port}
tls = "plain"
nick = "{nick}"

[store]
url = "{db_url}"

[roles]
admins = {json.dumps(admins)}

[pools]
names = {json.dumps(pools)}
{limits}""",
        encoding="utf-8",
    )
    return path


class BotProcess:
    """`python -m bot run --config FILE` as a child, optionally under py-spy."""

    def __init__(
        self, config: Path, log_dir: Path, profile: Path | None = None, name: str = "addinbot"
    ) -> None:
        self.config = config
        self.log_path = log_dir / f"{name}.log"
        self.profile = profile
        self.proc: asyncio.subprocess.Process | None = None
        self.bot_pid: int | None = None

    async def start(self) -> None:
        argv = python_module("bot", "run", "--config", str(self.config))
        if self.profile is not None:
            if PY_SPY is None:
                raise WorkerError("--profile needs py-spy (pip install py-spy)")
            argv = [PY_SPY, "record", "--rate", "400", "--format", "raw", "--nonblocking",
                    "-o", str(self.profile), "--", *argv]
        self.proc = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL,
            stdout=self.log_path.open("ab"), stderr=asyncio.subprocess.STDOUT,
        )
        self.bot_pid = self.proc.pid
        if self.profile is not None:
            for _ in range(200):
                children = psutil.Process(self.proc.pid).children()
                if children:
                    self.bot_pid = children[0].pid
                    break
                await asyncio.sleep(0.01)

    async def stop(self, timeout: float = 20.0) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.returncode is None and self.bot_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.bot_pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        return proc.returncode

    async def kill(self) -> None:
        """SIGKILL: no clean stop (the server ends its session)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.returncode is None and self.bot_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.bot_pid, signal.SIGKILL)
        await proc.wait()

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) resident memory of the bot process, in MB."""
        assert self.bot_pid is not None
        return rss_of(self.bot_pid)


def rss_of(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)

    def mb(key: str) -> float:
        return int(fields[key].split()[0]) / 1024

    return mb("VmRSS"), mb("VmHWM")


class CpuMeter:
    """CPU seconds (user + system) used by named processes between start() and stop()."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items() if pid}
        self._before: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        taken: dict[str, float] = {}
        for name, proc in self.procs.items():
            try:
                times = proc.cpu_times()
                taken[name] = times.user + times.system
            except psutil.NoSuchProcess:
                taken[name] = self._before.get(name, 0.0)
        return taken

    def start(self) -> CpuMeter:
        self._before = self._now()
        return self

    def stop(self) -> dict[str, float]:
        after = self._now()
        self.used = {name: after[name] - self._before.get(name, 0.0) for name in after}
        return self.used
