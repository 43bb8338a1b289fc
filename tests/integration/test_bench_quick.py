"""The benchmark (`python -m tests.bench`) runs end to end in its quick mode and writes its
results. No timing is asserted here: the figures are the benchmark's business, not a test's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# The benchmark picks its stores itself (the bot on SQLite, the store and cluster parts on
# PostgreSQL): the PostgreSQL pass of the suite would run the same thing again.
pytestmark = [pytest.mark.xmpp, pytest.mark.postgres, pytest.mark.once]


def test_quick_benchmark_writes_its_results_and_serves_every_joiner(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tests.bench", "--quick", "--out", str(tmp_path)]
    if os.environ.get("ADDINBOT_TEST_NO_PG") == "1":
        command.append("--no-pg")
    elif "ADDINBOT_TEST_PG_URL" in os.environ:
        command += ["--pg-url", os.environ["ADDINBOT_TEST_PG_URL"]]

    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )

    assert done.returncode == 0, done.stderr[-4000:]
    table = (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
    assert "| measure | addinbot | baseline | ratio | target | met? |" in table
    png = (tmp_path / "latency.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert len(png) > 10_000
    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert set(results) >= {"commands", "storm", "startup", "store"}
    rounds = results["storm"]["rounds"]
    for round_ in rounds["bot"] + rounds["bot_held"]:  # live, and held until all are in
        assert round_["served"] == round_["joiners"] == results["storm"]["crowd"]
        assert round_["with_link"] == round_["joiners"]  # every one with the XEP-0066 link
    for round_ in rounds["bot_held"]:
        assert round_["joined"] == round_["joiners"]  # all were in before the bot went on
    assert results["prosody_log_errors"] == []
    if "cluster" in results:  # not with --no-pg: several processes need PostgreSQL
        part = results["cluster"]
        assert part["prosody_log_errors"] == []
        assert (tmp_path / "cluster.png").read_bytes().startswith(b"\x89PNG")
        for run in part["scenarios"]:
            assert run["startup"]["served_twice"] == run["failover"]["served_twice"] == 0
            assert run["startup"]["lease_mismatch"] == 0
            failover = run["failover"]
            assert failover["told_twice"] == 0, failover["welcomes"]
            assert failover["gap_joiners_told"] == failover["gap_joiners"] > 0
            assert failover["joiners_before_told_once"] == failover["joiners_before"] > 0
