"""SQLite stays single-process (issue 15, item 3): a second `run` on the same file refuses
to start with one line, and the lock goes with the process, even a SIGKILLed one."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.prosody import Prosody
from tests.integration.conftest import write_config
from tests.integration.test_faults import ROOT, BotProcess

pytestmark = [pytest.mark.xmpp, pytest.mark.sqlite_only]


async def test_a_second_run_on_one_sqlite_file_is_refused(
    prosody: Prosody, tmp_path: Path
) -> None:
    config = write_config(prosody, tmp_path)
    database = tmp_path / "addinbot.db"
    with BotProcess(config, tmp_path / "first.log") as first:
        await first.start()
        second = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "bot", "run", "--config", str(config)],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )
        assert second.returncode == 1
        assert second.stderr.splitlines() == [
            f"addinbot: another addinbot is running on {database} (SQLite serves one "
            "process; share the rooms between processes on PostgreSQL)"
        ]
        first.kill()  # SIGKILL: the kernel drops the lock with the process
    with BotProcess(config, tmp_path / "third.log") as third:
        await third.start()
        assert await third.terminate() == 0
