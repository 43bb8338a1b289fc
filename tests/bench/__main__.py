"""``python -m tests.bench``: addinbot measured against bare slixmpp baselines, in one run.

    python -m tests.bench                  # everything (~2 min on 2 cores)
    python -m tests.bench --quick          # smaller counts (~20 s), e.g. for a test
    python -m tests.bench --parts storm,store --profile

Parts: ``commands`` (round trips vs an echo bot), ``storm`` (a crowd joins at once, and
joins while the announcer is held, vs the raw send rate), ``startup`` (1,000 remembered
rooms vs a bare client; memory), ``store`` (10,000 add-ins and 100,000 rooms on SQLite and
PostgreSQL), ``cluster`` (4 processes on one PostgreSQL sharing 400, 4,000, 20,000 rooms:
start-up and failover vs bare clients, and nobody told twice). Everything talks to a
private Prosody on 127.0.0.1 (and PostgreSQL on the URL given); results go to ``--out``
(``tests/bench/results``; ``--quick``: ``tests/bench/results/quick``; ``--profile``:
``tests/bench/results/profile``, where the profiles go too — both folders git ignores, and
so it does the profiles and results.json anywhere under results/).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import platform
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.bench import cluster, commands, report, scene, startup, storm
from tests.bench import store as store_part
from tests.bench.procs import ROOT, BotProcess, CpuMeter, Worker, python_module, write_bot_config
from tests.bench.server import BenchServer

PARTS = ("commands", "storm", "startup", "store", "cluster")
DEFAULT_PG = os.environ.get(
    "ADDINBOT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
RESULTS = Path(__file__).resolve().parent / "results"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts (< 1 min)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated, of: {', '.join(PARTS)} (default: all)")
    parser.add_argument("--out", type=Path, help="results folder")
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="PostgreSQL server for the store "
                        "and cluster parts (each a database of its own, created and dropped)")
    parser.add_argument("--no-pg", action="store_true", help="store part on SQLite only, "
                        "no cluster part")
    parser.add_argument("--profile", action="store_true",
                        help="run the bot of the commands and storm parts under py-spy, "
                        "and their Prosody under a Lua sampling profiler; the collapsed "
                        "stacks and a summary of each go to the results folder (by default "
                        "tests/bench/results/profile, which git ignores)")
    parser.add_argument("--full-presence", action="store_true",
                        help="the crowd gets every occupant's presence (N² fan-out) instead "
                        "of only its own")
    parser.add_argument("--time-limit", type=float, help="give up after this many seconds "
                        "(default 900, --quick 240)")
    parser.add_argument("--nagle", choices=("both", "off", "on"), default="both",
                        help="the commands part on a server with Nagle's algorithm off "
                        "(network_settings.nagle = false), on (Prosody's default), or both "
                        "(default); the storm and start-up always run with it off")
    parser.add_argument("--cluster-rooms", help="the cluster part's room counts, comma-"
                        "separated (default 400,4000,20000; --quick 100)")
    parser.add_argument("--cluster-lease", help="the cluster part's LEASE_S,RENEW_S (default "
                        "the bot's, 9,3; --quick 4,1)")
    parser.add_argument("--startup-rooms", type=int, metavar="N",
                        help="rooms the start-up part joins (default 1,000; --quick 100)")
    parser.add_argument("--startup-rounds", type=int, metavar="N",
                        help="bare and bot start-ups the start-up part alternates (default 5; "
                        "--quick 1)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, dbs)")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    if args.out is None:
        # A profiled run's figures are not the benchmark's: they and the profiles go where
        # git does not look, as a quick run's do.
        args.out = RESULTS / "quick" if args.quick else RESULTS / "profile" if args.profile \
            else RESULTS
    if args.cluster_lease is not None:
        lease_s, _, renew_s = args.cluster_lease.partition(",")
        args.cluster_lease = (float(lease_s), float(renew_s))
    for name in ("startup_rooms", "startup_rounds"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.time_limit is None:
        args.time_limit = 240.0 if args.quick else 900.0
        if "cluster" in args.parts and not args.quick:
            args.time_limit += 1800.0  # 20,000 rooms over 4 processes
    return args


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- parts 1 and 2: one bot process, one server --------------------------------------------


async def bot_parts(
    args: argparse.Namespace, sizes: scene.Sizes, server: BenchServer, work: Path,
    parts: set[str],
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    port = server.port
    db_url = scene.seed_bot_db(work / "bot.db", sizes)
    config = write_bot_config(
        work / "bot.toml", port=port, db_url=db_url, password=scene.PASSWORD,
        admins=[f"{scene.ADMIN}@{scene.DOMAIN}"], pools=[scene.MUC],
    )
    profile = args.out / "profile-bot.txt" if args.profile else None
    bot = BotProcess(config, work, profile=profile)
    peer = ["--port", str(port), "--password", scene.PASSWORD]
    echo = Worker("echo", python_module(
        "tests.bench.peers", "echo", *peer, "--user", scene.ECHO, "--nick", "Echo",
        "--room", scene.ECHO_ROOM), work)
    workers: list[Worker] = [echo]
    measurer = None
    try:
        # The bot joins only rooms that exist (a room its join would create is undone, and
        # tried again later, waiting longer each time): they are made first.
        await cluster.create_rooms(port, scene.PASSWORD, scene.bot_rooms(sizes), scene.ADMIN)
        await bot.start()
        await echo.start()
        measurer = await scene.connect(scene.ADMIN, port)
        await scene.until_answers(measurer, f"{scene.BOT}@{scene.DOMAIN}", "help")
        await scene.until_answers(measurer, f"{scene.ECHO}@{scene.DOMAIN}", "ping")
        await scene.join_and_see(measurer, scene.CMD_ROOM, "Admin", scene.BOT_NICK)
        await scene.join_and_see(measurer, scene.ECHO_ROOM, "Admin", "Echo")
        say("bot and echo ready")
        if "commands" in parts:
            nagle = "on" if server.nagle else "off"
            say(f"part 1: command round trips, {sizes.samples} of each kind (Nagle {nagle})")
            meter = CpuMeter({"prosody": server.pid, "addinbot": bot.bot_pid,
                              "echo": echo.pid}).start()
            started = time.monotonic()
            results["commands"] = await commands.run(
                measurer, sizes.samples, sizes.warmup, sizes.block
            )
            results["commands"]["wall_s"] = time.monotonic() - started
            results["commands"]["cpu_s"] = meter.stop()
        if "storm" in parts:
            say(f"part 2: join storm, {sizes.crowd} joiners, {sizes.storm_rounds} round(s)")
            results["storm"] = await storm_part(args, sizes, server, bot, measurer, workers, work)
        rss, peak = bot.rss_mb()
        results["bot_rss_mb"] = {"now": rss, "peak": peak}
    finally:
        if measurer is not None:
            await measurer.close()
        for worker in workers:
            await worker.stop()
        await bot.stop()
    if profile is not None and profile.exists():
        keep_profile(profile, args.out, "bot")
    return results


def keep_profile(stacks: Path, out: Path, who: str) -> None:
    """profile-WHO-summary.txt, and the stacks gzipped beside it (for a flame graph)."""
    from tests.bench import profile as profile_summary

    summary = profile_summary.summarise(stacks)
    (out / f"profile-{who}-summary.txt").write_text(summary, encoding="utf-8")
    with stacks.open("rb") as raw, gzip.open(out / f"profile-{who}.txt.gz", "wb") as packed:
        shutil.copyfileobj(raw, packed)  # ~10x smaller
    stacks.unlink()


async def storm_part(
    args: argparse.Namespace, sizes: scene.Sizes, server: BenchServer, bot: BotProcess,
    measurer: Any, workers: list[Worker], work: Path,
) -> dict[str, Any]:
    port = server.port
    for round_ in range(sizes.storm_rounds):  # the bot is in every storm room
        for kind in scene.BOT_STORMS:
            room = scene.storm_room(kind, round_)
            await scene.join_and_see(measurer, room, "Admin", scene.BOT_NICK)
            measurer.leave(room, "Admin")
    from bot.announce import attached_sentence

    text = attached_sentence(scene.addin_name(1), scene.addin_url(1))
    peer = ["--port", str(port), "--password", scene.PASSWORD, "--text", text,
            "--url", scene.addin_url(1), "--name", scene.addin_name(1)]
    raw_rooms = [arg for r in range(sizes.storm_rounds)
                 for arg in ("--room", scene.storm_room("raw", r))]
    bare_rooms = [arg for r in range(sizes.storm_rounds) for kind in ("bare", "bare_held")
                  for arg in ("--room", scene.storm_room(kind, r))]
    sender = Worker("sender", python_module(
        "tests.bench.peers", "sender", *peer, "--user", scene.SENDER, "--nick", "Sender",
        *raw_rooms), work)
    announcer = Worker("announcer", python_module(
        "tests.bench.peers", "announcer", *peer, "--user", scene.ANNOUNCER, "--nick", "Announcer",
        *bare_rooms), work)
    workers += [sender, announcer]
    await sender.start()
    await announcer.start()
    per = -(-sizes.crowd // sizes.crowd_procs)
    crowd_workers = []
    for index in range(sizes.crowd_procs):
        first, count = index * per, min(per, sizes.crowd - index * per)
        crowd_workers.append(Worker(f"crowd{index}", python_module(
            "tests.bench.crowd", "--port", str(port), "--password", scene.PASSWORD,
            "--first", str(first), "--count", str(count)), work))
    workers += crowd_workers
    connect = [await w.start(timeout=120) for w in crowd_workers]
    say(f"crowd connected ({max(c['connect_s'] for c in connect):.1f} s)")
    pids = {"prosody": server.pid, "addinbot": bot.bot_pid, "sender": sender.pid,
            "announcer": announcer.pid}
    pids |= {w.name: w.pid for w in crowd_workers}
    result = await storm.run(storm.Crowd(crowd_workers), sender, pids, sizes.storm_rounds,
                             sizes.crowd)
    result["presence"] = "full" if args.full_presence else "own only (quiet crowd)"
    return result


# --- the run -------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    def first(path: str, key: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":" if ":" in line else "=", 1)[1].strip().strip('"')
        except OSError:
            pass
        return "?"

    prosody = "?"
    try:
        about = subprocess.run(["prosodyctl", "about"], capture_output=True, text=True,
                               timeout=10, check=False)
        prosody = about.stdout.splitlines()[0] if about.stdout else "?"
    except (OSError, subprocess.TimeoutExpired):
        pass
    import slixmpp
    import sqlalchemy

    return {
        "CPU": f"{first('/proc/cpuinfo', 'model name')}, {os.cpu_count()} cores",
        "memory": first("/proc/meminfo", "MemTotal"),
        "OS": f"{first('/etc/os-release', 'PRETTY_NAME')}, Linux {platform.release()}",
        "Python": platform.python_version(),
        "slixmpp": slixmpp.__version__,
        "SQLAlchemy": sqlalchemy.__version__,
        "SQLite": sqlite3.sqlite_version,
        "server": f"{prosody}, plaintext c2s on 127.0.0.1",
    }


def notes(results: dict[str, Any], rows: list[report.Row]) -> str:
    missed = [row for row in rows if row.met is False]
    lines = [
        "How it is measured (all in this one run, on one machine, over loopback):",
        "",
        "- Every client talks to a private Prosody started for the run "
        "(tests/bench/server.py): mod_limits on, lifted for the benchmark's accounts only; "
        "Nagle off for the storm and start-up, and the commands measured on it and again on "
        "a second server with Prosody's default (Nagle on; `--nagle`); room cache "
        "raised from 100 to 10,000 (else each join of a persistent room beyond the 100th "
        "reloads it from disk, ~16 ms).",
        "- The bot runs as `python -m bot run` in a process of its own, on SQLite. The echo "
        "bot and the bare announcer are bare slixmpp clients (disco, MUC, OOB, ping, delay); "
        "the raw sender is the bot's own XMPP edge without the bot; each in a process of its "
        "own. Round trips are taken by a minimal asyncio client (tests/bench/rawxmpp.py) from "
        "just before the write to the parsed answer.",
        "- Round trips are serial (the next request leaves when the answer is in); the kinds "
        "are interleaved in blocks. `!addin` is compared with an echo in a room (a room "
        "message costs the server more than a direct one); `list` and `attach` with the "
        "direct-message echo.",
        "- The join storm's crowd are raw clients in separate processes that all send their "
        "join at once. Unless --full-presence, a benchmark-only MUC module spares the crowd "
        "the other occupants' presence (the bot and every baseline still get all of it); "
        "Prosody 0.12's own presence-broadcast room option would hide the joiners from the "
        "bot as well. Every round uses fresh rooms, so each joiner is due its link. 'Held': "
        "the announcer is stopped (SIGSTOP) while the crowd joins and continued (SIGCONT) once "
        "all are in; the rate is taken from then, as the raw send rate is from the first "
        "send.",
        "- Start-up runs each kind in a fresh process, alternately, after a warm-up that "
        "creates the rooms; 'start' is the call that starts the bot (bot.runner.Service: "
        "migrations, connect, read rooms, join) or connects the bare client.",
        "- The store part calls bot.addins (what chat and the command line run) in-process.",
        "- The cluster part (tests/bench/cluster.py) has a Prosody of its own, its room cache "
        "above the room count; its rooms are created once, before anything is timed. Each "
        "scenario has a PostgreSQL database of its own (created and dropped), the rooms in it "
        "remembered with an add-in attached. Its bare clients start together, a share of the "
        "rooms each; then the `addinbot run` processes ([cluster] enabled, one account, a "
        "resource each) start together. Who is in which room is read from their JSON logs, "
        "at the logs' own times, and checked against the leases table. Start-up is timed "
        "from the first process's (or bare client's) start call to the last room joined; "
        "failover from the SIGKILL to the last of the killed process's rooms joined by "
        "another, against one bare client joining as many rooms once the bots have stopped. "
        "Joiners come into the killed process's rooms before the kill and right after it; "
        "every welcome each receives is counted per room, after a round trip through every "
        "surviving process.",
        "- `--profile` runs the bot under py-spy and Prosody under a Lua sampling profiler "
        "(every 10,000 Lua instructions; time in C, such as XML parsing, is not seen) and "
        "writes profile-bot-summary.txt and profile-prosody-summary.txt (and the stacks, "
        "gzipped) next to this file. Profiled, both run slower: figures from such a run are "
        "not the benchmark's.",
    ]
    pg_error = results.get("store", {}).get("postgresql_error")
    if pg_error:
        lines += ["", f"PostgreSQL was not measured: {pg_error}"]
    if missed:
        lines += ["", "Targets not met in this run:", ""]
        lines += [f"- {row.measure}: {row.addinbot} vs {row.baseline} ({row.ratio})"
                  for row in missed]
    lines += findings(results)
    storm_result = results.get("storm")
    if storm_result:
        lines += ["", "Who was busy during the storms (CPU seconds / wall seconds of the "
                  "phase, median of rounds; 1.0 = one core):", ""]
        for kind, label in report.STORM_PHASES:
            rounds = storm_result["rounds"].get(kind)
            if not rounds:
                continue
            wall = report.median([r["all_served_s"] for r in rounds])
            shares = {}
            for name in rounds[0]["cpu_s"]:
                shares[name] = report.median([r["cpu_s"][name] / max(r["all_served_s"], 1e-9)
                                              for r in rounds])
            busy = ", ".join(f"{n} {v:.2f}" for n, v in sorted(shares.items(),
                                                                key=lambda kv: -kv[1]))
            lines.append(f"- {label} ({wall:.3f} s): {busy}")
    return "\n".join(lines)


def findings(results: dict[str, Any]) -> list[str]:
    """What this run's figures say about where the bound is."""
    found: list[str] = []
    part = results.get("commands")
    if part:
        times = part["samples_ms"]
        gap = report.median(times["list"]) - report.median(times["echo_dm"])
        size = report.median(times["echo_dm_big"]) - report.median(times["echo_dm"])
        if size >= gap:
            found.append(
                f"- `list`: {gap:.2f} ms over the echo, less than the length of its answer "
                f"alone costs an echo ({size:.2f} ms, answering as much text): the bot's own "
                "path (recognising the command, the role check, the kept answer: no database) "
                "is no slower than a bare echo's."
            )
        else:
            found.append(
                f"- `list`: of its {gap:.2f} ms over the echo, {size:.2f} ms is the length of "
                "the answer alone (an echo answering as much text); the rest is the bot's own "
                "path (recognising the command, the role check, the kept answer: no database)."
            )
        write = report.median(times["attach"]) - report.median(times["echo_dm"])
        found.append(
            f"- `attach`: {write:.2f} ms over the echo: a hop to a database thread and back "
            "(an OS thread wake-up each way), the write transaction (SQLite, through "
            "SQLAlchemy, on a core whose caches the loop thread has not warmed), and the "
            "room announcement: the server broadcasts it and reflects it to the bot, and the "
            "next request waits behind that."
        )
    part = results.get("storm")
    if part:
        rounds = part["rounds"]
        joins = report.median([r["all_served_s"] for r in rounds["joins"]])
        prosody = report.median([r["cpu_s"]["prosody"] / r["all_served_s"]
                                 for r in rounds["joins"]])
        ceiling = report.median([r["rate"] for r in rounds["joins"]])
        raw = report.median([r["rate"] for r in rounds["raw"]])
        bot = report.median([r["rate"] for r in rounds["bot"]])
        bare = report.median([r["rate"] for r in rounds["bare"]])
        found.append(
            f"- Join storm: with nobody to tell anything, the server took {joins:.2f} s to let "
            f"the {part['crowd']} joiners in, busy {prosody:.0%} of a core; no announcer can "
            f"tell a joiner before its join is through, so {ceiling:,.0f}/s ({ceiling / raw:.0%} "
            "of the raw send rate) is the ceiling on this server. In the storm the server lets "
            "the crowd in and carries the announcements on that one core: the bare announcer "
            f"reached {bare:,.0f}/s and addinbot {bot:,.0f}/s ({bot / bare:.0%} of the bare "
            "announcer). The bound there is the server, not the bot."
        )
        if rounds.get("bot_held") and rounds.get("bare_held"):
            held = report.median([r["rate"] for r in rounds["bot_held"]])
            bare_held = report.median([r["rate"] for r in rounds["bare_held"]])
            found.append(
                "- Held (the crowd in first, its joins waiting in the announcer's socket), the "
                f"server only carries announcements: addinbot {held:,.0f}/s ({held / raw:.0%} "
                f"of the raw send rate), the bare announcer {bare_held:,.0f}/s "
                f"({bare_held / raw:.0%}). Unlike the raw sender, an announcer first reads "
                "each joiner's presence."
            )
    part = results.get("startup")
    if part:
        runs = part["runs"]
        imports = report.median([r["imports_s"] for r in runs["bot"]])
        bare_imports = report.median([r["imports_s"] for r in runs["bare"]])
        found.append(
            f"- Start-up is timed from the call that starts the bot; before it, the interpreter "
            f"and imports take {imports:.2f} s for addinbot (SQLAlchemy, Alembic, pydantic) and "
            f"{bare_imports:.2f} s for the bare client."
        )
    part = results.get("cluster")
    if part:
        found += cluster_findings(part)
    return ["", "What the figures say:", "", *found] if found else []


def cluster_findings(part: dict[str, Any]) -> list[str]:
    found = []
    made = part["create"]
    found.append(
        f"- Cluster: Prosody created {made['rooms']:,} rooms at {made['rate']:,.0f}/s, busy "
        f"{made['cpu_s']['prosody'] / made['created_s']:.0%} of a core."
    )
    for run in part["scenarios"]:
        what = f"{run['processes']} processes, {run['rooms']:,} rooms"
        if "error" in run:
            error = " ".join(run["error"].split())[:600]
            found.append(f"- Cluster, {what}: the rooms were never all served: {error}")
            continue
        start, fail = run["startup"], run["failover"]
        prosody = start["cpu_s"]["prosody"] / start["wall_s"]
        bots = sum(v for k, v in start["cpu_s"].items() if k != "prosody") / start["wall_s"]
        bound = ("Prosody is the bound" if prosody >= 0.85 else
                 "Prosody is not the bound there")
        moved = (
            ": the first process to renew its leases saw itself alone and took every free "
            "room, and gave the rooms beyond its share up at its next beats (README: \"A fair "
            "share\")" if start["joins"] > run["rooms"] else ""
        )
        found.append(
            f"- Cluster, {what}: from the processes' spawn to every room served, Prosody was "
            f"busy {prosody:.0%} of a core and the bots together {bots:.0%} ({bound}). "
            f"The rooms were joined {start['joins']:,} times in all before the shares settled "
            f"({'+'.join(map(str, start['shares']))}, {start['settled_s']:.1f} s){moved}."
        )
        prosody = fail["cpu_s"]["prosody"] / max(fail["wall_s"], 1e-9)
        bots = sum(v for k, v in fail["cpu_s"].items() if k != "prosody") / max(
            fail["wall_s"], 1e-9)
        bound = ("Prosody is the bound" if prosody >= 0.85 else
                 "Prosody is not the bound there")
        found.append(
            f"- Cluster, {what}: from the SIGKILL to its {fail['rooms']:,} rooms served again "
            f"({fail['failover_s']:.2f} s), Prosody was busy {prosody:.0%} of a core and the "
            f"surviving bots together {bots:.0%} ({bound}); each room taken over costs a "
            "join, as a bare client's does, and (where the bot is no moderator) a disco#info "
            "after it, four at a time."
        )
    return found


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = scene.Sizes.quick() if args.quick else scene.Sizes()
    if args.startup_rooms is not None:
        sizes = replace(sizes, start_rooms=args.startup_rooms)
    if args.startup_rounds is not None:
        sizes = replace(sizes, start_rounds=args.startup_rounds)
    work = Path(tempfile.mkdtemp(prefix="addinbot-bench-"))
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": f"python -m tests.bench {shlex.join(sys.argv[1:])}".strip(),
        "sizes": asdict(sizes),
        "machine": machine(),
        "load_start": os.getloadavg()[0],
    }
    say(f"work folder {work}; results to {args.out}")
    lua_profile = work / "profile-prosody.txt" if args.profile else None
    server = BenchServer(work / "prosody", scene.accounts(sizes),
                         quiet_crowd=not args.full_presence, lua_profile=lua_profile,
                         rooms=sizes.start_rooms)
    ok = False
    try:
        async with asyncio.timeout(args.time_limit):
            if {"commands", "storm", "startup"} & set(args.parts):
                server.start()
                say(f"prosody on 127.0.0.1:{server.port}")
                try:
                    first = {"storm"} | ({"commands"} if args.nagle != "on" else set())
                    if first & set(args.parts):
                        results |= await bot_parts(
                            args, sizes, server, work, first & set(args.parts)
                        )
                    if "startup" in args.parts:
                        say(f"part 3: start-up with {sizes.start_rooms} rooms, "
                            f"{sizes.start_rounds} round(s)")
                        results["startup"] = await startup.run(
                            server.port, work, work, sizes.start_rooms, sizes.start_rounds
                        )
                finally:
                    server.stop()
                    results["prosody_log_errors"] = server.log_errors()
                    if lua_profile is not None and lua_profile.exists():
                        keep_profile(lua_profile, args.out, "prosody")
            if "commands" in args.parts and args.nagle != "off":
                results["commands_nagle_on"] = await nagle_on_commands(args, sizes, work)
            if "store" in args.parts:
                say(f"part 4: store with {sizes.store_addins} add-ins, "
                    f"{sizes.store_rooms} rooms")
                results["store"] = await asyncio.to_thread(
                    store_part.run, work, sizes.store_addins, sizes.store_rooms,
                    sizes.store_samples, None if args.no_pg else args.pg_url,
                )
            if "cluster" in args.parts and not args.no_pg:
                say("part 5: several processes on one PostgreSQL")
                cluster_profile = work / "profile-prosody-cluster.txt" if args.profile else None
                results["cluster"] = await cluster.run(
                    work=work, pg_url=args.pg_url, quick=args.quick, password=scene.PASSWORD,
                    lua_profile=cluster_profile, rooms=[
                        int(n) for n in (args.cluster_rooms or "").split(",") if n.strip()
                    ], lease=args.cluster_lease,
                )
                if cluster_profile is not None and cluster_profile.exists():
                    keep_profile(cluster_profile, args.out, "prosody-cluster")
        ok = True
    finally:
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"work folder kept: {work}")
    return results


async def nagle_on_commands(
    args: argparse.Namespace, sizes: scene.Sizes, work: Path
) -> dict[str, Any]:
    """The commands part again, on a server with Prosody's default Nagle setting (on)."""
    folder = work / "nagle-on"
    folder.mkdir()
    server = BenchServer(folder / "prosody", scene.accounts(sizes),
                         quiet_crowd=not args.full_presence, nagle=True)
    server.start()
    say(f"prosody (Nagle on) on 127.0.0.1:{server.port}")
    try:
        return (await bot_parts(args, sizes, server, folder, {"commands"}))["commands"]
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.chdir(ROOT)
    started = time.monotonic()
    results = asyncio.run(run(args))
    results["elapsed_s"] = time.monotonic() - started
    results["machine"]["load average (1 min) at start, end"] = (
        f"{results.pop('load_start'):.2f}, {os.getloadavg()[0]:.2f} "
        "(other work on the machine shows here)"
    )
    rows = report.all_rows(results)
    rows = report.write(args.out, results, notes(results, rows))
    print(report.table(rows))
    say(f"wrote {args.out / 'RESULTS.md'} and {args.out / 'latency.png'} "
        f"in {results['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
