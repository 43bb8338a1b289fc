"""Part 5, several processes on one PostgreSQL database (README "Several processes").

    python -m tests.bench --parts cluster             # 400 rooms, then 20,000, on 4 processes
    python -m tests.bench.cluster bare --port P --user U --password PW --first F --count N
    python -m tests.bench.cluster bare --port P --user U --password PW --rooms-file FILE

On a Prosody of its own (its room cache above the room count), the rooms are created once,
by clients that join and leave them, pipelined (timed: rooms/s). Then, per scenario (the
full run: 4 processes with 400 rooms, then 4 with 20,000; --quick: 2 with 100), on a
PostgreSQL database of its own (created and dropped), the rooms remembered as joined and
an add-in attached to each:

1. Start-up. P bare slixmpp clients (tests/bench/bare.py) started together, each joining
   its share of the rooms; then P `addinbot run` with `[cluster] enabled = true`, same
   account, each its own resource, started together, until every room is served by exactly
   one process, and until the shares have settled. Which process is in which room is read
   from their logs (JSON lines: "joined ROOM", "left ROOM (no longer leased …)", "out of
   ROOM", "no longer serving …"), with the logs' own times; at the end the leases table
   (store.leases.holders) must say the same.
2. Failover. A few joiners come into rooms of one process and are welcomed; that process
   is SIGKILLed; more joiners come into its rooms right away (before the others take them
   over); timed from the kill to every one of its rooms served again, by exactly one other
   process. Every welcome each joiner receives is counted per room: nobody is told twice,
   and everyone who came in the gap is told once.
3. The baseline for the failover: once the bots have stopped, one bare client joins the
   killed process's rooms.

Prosody's CPU is measured in each phase (CpuMeter).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOM_FORMAT = "c{:05d}@conference.localhost"
CREATOR = "creator"
BARE_USER = "bare"
JOINER = "joiner{:02d}"
JOINERS = 8  # accounts for the joiners (half before the kill, half in the gap)
CREATE_CLIENTS = 4
CREATE_WINDOW = 64  # joins in flight per creating client
WELCOME_PREFIX = "This room's add-in is “"


def room_names(count: int, first: int = 0) -> list[str]:
    return [ROOM_FORMAT.format(i) for i in range(first, first + count)]


@dataclass(frozen=True)
class Scenario:
    processes: int
    rooms: int
    lease_s: float = 9.0  # the defaults (bot/config.py)
    renew_s: float = 3.0
    joiners_rooms: int = 3  # rooms each joiner comes into


# 20,000 is the target; 4,000 between. A scenario whose processes join or leave nothing for
# STALL_S is recorded as never served (tests/bench/RESULTS.md says why, from the bots' logs).
# At 20,000 rooms (5,000 a process) on 2 cores, the defaults (9 s / 3 s) churn: while the
# server lets thousands of joins in, a process's event loop answers a renewal later than the
# watchdog allows (lease_s - renew_s), and it gives everything up; 30 s / 5 s settle at once
# (README "Several processes": what a large site sets).
FULL = (Scenario(4, 400), Scenario(4, 4_000), Scenario(4, 20_000, lease_s=30.0, renew_s=5.0))
QUICK = (Scenario(2, 100, lease_s=4.0, renew_s=1.0, joiners_rooms=2),)


def accounts(password: str) -> dict[str, str]:
    users = ["addinbot", "admin", CREATOR, BARE_USER] + [JOINER.format(i) for i in range(JOINERS)]
    return dict.fromkeys(users, password)


def now_wall() -> float:
    return time.time()


# --- the bare client, in a process of its own ----------------------------------------------


async def bare(args: argparse.Namespace) -> dict[str, Any]:
    """Connect and join rooms [first, first + count) until every own presence is back."""
    from slixmpp import JID

    from tests.bench.bare import Peer

    started_wall = now_wall()
    started = time.monotonic()
    client = Peer(f"{args.user}@localhost", args.password, args.nick)
    if args.rooms_file is not None:
        rooms = json.loads(args.rooms_file.read_text(encoding="utf-8"))
    else:
        rooms = room_names(args.count, args.first)
    wanted, joined = set(rooms), set()
    all_in = asyncio.Event()

    def on_presence(pres: Any) -> None:
        if pres["from"].resource != args.nick:
            return
        x = pres.xml.find("{http://jabber.org/protocol/muc#user}x")
        codes = set() if x is None else {
            s.get("code") for s in x.findall("{http://jabber.org/protocol/muc#user}status")
        }
        room = pres["from"].bare
        if "110" in codes and room in wanted:
            joined.add(room)
            if len(joined) >= len(wanted):
                all_in.set()

    client.add_event_handler("groupchat_presence", on_presence)
    client.connect("127.0.0.1", args.port)
    await asyncio.wait_for(client.online.wait(), 30)
    muc = client.plugin["xep_0045"]
    for room in rooms:
        muc.make_join_stanza(JID(room), args.nick, maxstanzas=0).send()
    await asyncio.wait_for(all_in.wait(), args.timeout)
    run_s = time.monotonic() - started
    result = {"run_s": run_s, "start": started_wall, "done": started_wall + run_s,
              "rooms": len(joined)}
    await client.disconnect(wait=5.0)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.cluster")
    parser.add_argument("mode", choices=("bare",))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--nick", default="AddinBot")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--rooms-file", type=Path, help="a JSON list of rooms (not --first, "
                        "--count)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(bare(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())


# --- the driver, run by the benchmark ------------------------------------------------------


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


async def create_rooms(
    port: int, password: str, rooms: list[str], user: str = CREATOR
) -> dict[str, Any]:
    """Make the rooms (persistent by the server's default): clients of `user` join each and
    leave it, CREATE_WINDOW joins in flight each."""
    from tests.bench.rawxmpp import PRESENCE, RawClient, is_self_presence

    todo = list(reversed(rooms))
    done = asyncio.Event()
    created = 0
    nick = "Creator"

    async def one(index: int) -> RawClient:
        client = RawClient(user, "localhost", password, f"create{index}")
        await client.connect("127.0.0.1", port, timeout=30)
        return client

    clients = [await one(i) for i in range(CREATE_CLIENTS)]
    started = time.monotonic()

    def feed(client: RawClient) -> None:
        if todo:
            client.join(todo.pop(), nick)

    def handler(client: RawClient) -> Any:
        def on_stanza(stanza: Any, _arrived: float) -> None:
            nonlocal created
            if stanza.tag != PRESENCE:
                return
            room = stanza.get("from", "").partition("/")[0]
            if not is_self_presence(stanza, f"{room}/{nick}"):
                if stanza.get("type") == "error":
                    raise RuntimeError(f"cannot create {room}: {stanza}")
                return
            if stanza.get("type") == "unavailable":
                created += 1
                if created == len(rooms):
                    done.set()
                feed(client)
            else:
                client.leave(room, nick)
        return on_stanza

    for client in clients:
        client.on_stanza = handler(client)
        for _ in range(CREATE_WINDOW):
            feed(client)
    try:
        await asyncio.wait_for(done.wait(), max(120.0, len(rooms) / 20))
    finally:
        took = time.monotonic() - started
        await asyncio.gather(*(c.close() for c in clients))
    return {"rooms": len(rooms), "created_s": took, "rate": len(rooms) / took}


def seed(url: str, rooms: list[str]) -> tuple[str, str]:
    """The rooms, remembered as joined, each with one add-in; (its name, its URL)."""
    from sqlalchemy import insert, select, update

    from bot import addins
    from bot.values import Actor
    from store import Store
    from store.models import Addin, Pool, Room

    name, link = "Cluster Panel", "https://addins.example.org/cluster"
    store = Store.open(url)
    try:
        store.upgrade()
        addins.register(store, Actor("bench", "cli"), pool="conference.localhost",
                        name=name, url=link)
        with store.engine.begin() as rows:
            pool_id = rows.execute(select(Pool.id)).scalar_one()  # type: ignore[call-overload]
            addin_id = rows.execute(select(Addin.id)).scalar_one()  # type: ignore[call-overload]
            attached = datetime.now(UTC)
            for first in range(0, len(rooms), 5000):
                rows.execute(insert(Room), [
                    {"jid": room, "pool_id": pool_id, "joined": True, "addin_id": addin_id,
                     "attached_at": attached} for room in rooms[first:first + 5000]
                ])
            rows.execute(update(Room).values(addin_id=addin_id))
    finally:
        store.close()
    return name, link


def lease_holders(url: str) -> dict[str, str]:
    from store import Store, leases

    store = Store.open(url)
    try:
        return leases.holders(store)
    finally:
        store.close()


# --- who serves what, from the bots' logs --------------------------------------------------


@dataclass
class BotLog:
    """One process's JSON log, read as it grows."""

    path: Path
    offset: int = 0
    rest: bytes = b""
    started: float | None = None  # "addinbot … starting" (wall clock)
    resource: str | None = None
    warning: str = ""  # the last one logged
    serving: set[str] = field(default_factory=set)
    joined_at: dict[str, float] = field(default_factory=dict)  # room -> last join (wall)
    events: list[tuple[float, int, str]] = field(default_factory=list)  # (t, +1/-1, room)

    def read(self) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        for raw in lines:
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            self._take(entry)

    def _take(self, entry: dict[str, Any]) -> None:
        message = entry.get("message", "")
        when = datetime.fromisoformat(entry["time"]).timestamp()
        if entry.get("level") in ("WARNING", "ERROR"):
            self.warning = message.splitlines()[0] if message else ""
        if message.startswith("joined ") and "@" in message:
            room = message.removeprefix("joined ")
            self.serving.add(room)
            self.joined_at[room] = when
            self.events.append((when, 1, room))
        elif message.startswith(("left ", "out of ")) and "@" in message:
            room = message.split(" ")[1] if message.startswith("left ") else message.split(" ")[2]
            if room in self.serving:
                self.serving.discard(room)
                self.events.append((when, -1, room))
        elif message.startswith("no longer serving "):
            for room in self.serving:
                self.events.append((when, -1, room))
            self.serving.clear()
        elif message.startswith("connected as "):
            self.resource = message.removeprefix("connected as ")
        elif " starting for " in message and self.started is None:
            self.started = when


def served_once(logs: list[BotLog], rooms: set[str]) -> bool:
    counts = Counter(room for log in logs for room in log.serving)
    return counts.keys() >= rooms and all(counts[room] == 1 for room in rooms)


def settled(logs: list[BotLog], rooms: set[str]) -> bool:
    floor, ceil = len(rooms) // len(logs), -(-len(rooms) // len(logs))
    return served_once(logs, rooms) and all(
        floor <= len(log.serving) <= ceil for log in logs
    )


def served_twice(logs: list[BotLog]) -> list[str]:
    """Rooms two processes were in at once, by the logs' times (a leave before a join at
    the same millisecond)."""
    events = sorted(((t, change, room) for log in logs for t, change, room in log.events),
                    key=lambda e: (e[0], e[1]))
    present: Counter[str] = Counter()
    twice: set[str] = set()
    for _t, change, room in events:
        present[room] += change
        if present[room] > 1:
            twice.add(room)
    return sorted(twice)


class Stalled(TimeoutError):
    """The processes stopped making progress (no room joined or left for STALL_S)."""


STALL_S = 60.0


async def until(logs: list[BotLog], done: Any, timeout: float, what: str) -> None:
    """Read the logs until `done()`; TimeoutError after `timeout`, Stalled once no process
    has joined or left a room for STALL_S."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    events, moved = -1, loop.time()
    while True:
        for log in logs:
            log.read()
        if done():
            return
        now = loop.time()
        counted = sum(len(log.events) for log in logs)
        if counted != events:
            events, moved = counted, now
        counts = [len(log.serving) for log in logs]
        warned = "; ".join(sorted({log.warning[:300] for log in logs if log.warning}))
        if now - moved > STALL_S:
            raise Stalled(f"not {what}: nothing joined or left for {STALL_S:.0f} s (serving "
                          f"{counts}; last warning: {warned or 'none'})")
        if now > deadline:
            raise TimeoutError(f"not {what} within {timeout:.0f} s (serving {counts}; last "
                               f"warning: {warned or 'none'})")
        await asyncio.sleep(0.1)  # the logs are files: read again


# --- joiners: clients that come into rooms and count the welcomes --------------------------


class Joiner:
    """A raw client that joins rooms and counts every welcome it gets, per room, and notes
    whether the bot was in the room when it came in."""

    def __init__(self, client: Any, changed: asyncio.Event) -> None:
        from tests.bench.rawxmpp import PRESENCE

        self.client = client
        self.nick = client.user
        self.changed = changed
        self.welcomes: Counter[str] = Counter()
        self.in_room: set[str] = set()
        self.bot_there: dict[str, bool] = {}  # room -> the bot listed before our own presence
        self._seen_bot: set[str] = set()
        self.bot_left: set[str] = set()  # rooms the bot was seen to leave while we were in
        self._presence = PRESENCE
        client.on_stanza = self.on_stanza

    def on_stanza(self, stanza: Any, _arrived: float) -> None:
        from tests.bench.rawxmpp import BODY, MESSAGE, is_self_presence

        sender = stanza.get("from", "")
        room, _, nick = sender.partition("/")
        if stanza.tag == self._presence:
            if is_self_presence(stanza, f"{room}/{self.nick}"):
                if stanza.get("type") != "unavailable" and room not in self.in_room:
                    self.in_room.add(room)
                    self.bot_there[room] = room in self._seen_bot
                    self.changed.set()
            elif nick.startswith("AddinBot") and room not in self.in_room:
                if stanza.get("type") == "unavailable":
                    self._seen_bot.discard(room)
                else:
                    self._seen_bot.add(room)
            elif nick.startswith("AddinBot") and stanza.get("type") == "unavailable":
                self.bot_left.add(room)
                self.changed.set()
        elif stanza.tag == MESSAGE and stanza.get("type") == "chat" and nick:
            body = stanza.findtext(BODY) or ""
            if body.startswith(WELCOME_PREFIX):
                self.welcomes[room] += 1
                self.changed.set()

    def join(self, rooms: list[str]) -> None:
        for room in rooms:
            self.client.join(room, self.nick)


async def joiners_until(joiners: list[Joiner], changed: asyncio.Event, done: Any,
                        timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done():
        changed.clear()
        left = deadline - loop.time()
        if left <= 0:
            return False
        try:
            await asyncio.wait_for(changed.wait(), left)
        except TimeoutError:
            return bool(done())
    return True


# --- one scenario --------------------------------------------------------------------------


async def scenario(
    plan: Scenario, *, server: Any, pg_url: str, work: Path, password: str,
) -> dict[str, Any]:
    from tests.bench import store as store_part
    from tests.bench.procs import BotProcess, write_bot_config

    rooms = room_names(plan.rooms)
    folder = work / f"cluster-{plan.processes}x{plan.rooms}"
    folder.mkdir()
    label = f"cluster {plan.processes}x{plan.rooms}"
    result: dict[str, Any] = {"processes": plan.processes, "rooms": plan.rooms,
                              "lease_s": plan.lease_s, "renew_s": plan.renew_s}
    share = -(-plan.rooms // plan.processes)
    say(f"{label}: {plan.processes} bare clients join a share each")
    result["bare_startup"] = await bare_clients(
        server, password, folder, [(i * share, min(share, plan.rooms - i * share))
                                   for i in range(plan.processes)])
    with store_part.postgres_engine(pg_url) as engine:
        url = engine.url.render_as_string(hide_password=False)
        addin = await asyncio.to_thread(seed, url, rooms)
        config = write_bot_config(
            folder / "bot.toml", port=server.port, db_url=url, password=password,
            admins=["admin@localhost"], pools=["conference.localhost"],
        )
        with config.open("a", encoding="utf-8") as handle:
            handle.write(f'\n[log]\nformat = "json"\n\n[cluster]\nenabled = true\n'
                         f"lease_s = {plan.lease_s}\nrenew_s = {plan.renew_s}\n")
        config.chmod(0o600)  # it holds the password
        bots = [BotProcess(config, folder, name=f"addinbot{i}") for i in range(plan.processes)]
        logs = [BotLog(bot.log_path) for bot in bots]
        try:
            say(f"{label}: {plan.processes} processes start together")
            result["startup"] = await bots_start(plan, bots, logs, server, url, rooms)
            say(f"{label}: served in {result['startup']['start_s']:.2f} s, settled in "
                f"{result['startup']['settled_s']:.2f} s; SIGKILL one")
            result["failover"] = await failover(plan, bots, logs, server, password, addin)
        except TimeoutError as exc:  # recorded: the figures of the other scenarios stand
            result["error"] = f"{type(exc).__name__}: {exc}"
            say(f"{label}: {result['error']}")
        finally:
            await asyncio.gather(*(bot.stop() for bot in bots))
    if "error" in result:
        return result
    lost = result["failover"].pop("lost")
    say(f"{label}: one bare client joins the killed one's {len(lost)} rooms")
    listing = folder / "failover-rooms.json"
    listing.write_text(json.dumps(lost), encoding="utf-8")
    result["bare_failover"] = await bare_clients(server, password, folder, [listing])
    return result


async def bare_clients(
    server: Any, password: str, folder: Path, shares: list[tuple[int, int] | Path],
) -> dict[str, Any]:
    """Bare clients started together, each joining a share (first, count) or the rooms of a
    file; from the first one's start call to the last one's last join."""
    from tests.bench.procs import CpuMeter, Worker, python_module

    workers = []
    for index, part in enumerate(shares):
        what = (["--rooms-file", str(part)] if isinstance(part, Path)
                else ["--first", str(part[0]), "--count", str(part[1])])
        workers.append(Worker(f"cluster-bare{index}", python_module(
            "tests.bench.cluster", "bare", "--port", str(server.port), "--user", BARE_USER,
            "--password", password, "--nick", "Bare", *what), folder))
    meter = CpuMeter({"prosody": server.pid}).start()
    spawned = now_wall()
    try:
        runs = await asyncio.gather(*(w.start(timeout=900) for w in workers))
    finally:
        cpu = meter.stop()
        for worker in workers:
            await worker.stop()
    start, done = min(r["start"] for r in runs), max(r["done"] for r in runs)
    return {"runs": runs, "run_s": done - start, "process_s": done - spawned, "cpu_s": cpu,
            "rooms": sum(r["rooms"] for r in runs)}


async def bots_start(
    plan: Scenario, bots: list[Any], logs: list[BotLog], server: Any, url: str,
    rooms: list[str],
) -> dict[str, Any]:
    from tests.bench.procs import CpuMeter

    wanted = set(rooms)
    spawned = now_wall()
    for bot in bots:
        await bot.start()
    names = {f"addinbot{i}": bot.bot_pid for i, bot in enumerate(bots)}
    meter = CpuMeter({"prosody": server.pid, **names}).start()
    limit = max(60.0, plan.rooms / 20)
    await until(logs, lambda: served_once(logs, wanted), limit, "every room served once")
    served_cpu = meter.stop()
    served_at = max(log.joined_at[room] for log in logs for room in log.serving)
    started_at = min(log.started or spawned for log in logs)
    await until(logs, lambda: settled(logs, wanted), limit, "settled (a fair share each)")
    settled_cpu = meter.stop()
    settled_at = max(t for log in logs for t, _, _ in log.events)
    holders = await asyncio.to_thread(lease_holders, url)
    mismatched = 0
    for log in logs:
        me = (log.resource or "").rpartition("-")[2]
        mismatched += sum(1 for room in log.serving if holders.get(room) != me)
    joins = sum(1 for log in logs for _, change, _ in log.events if change > 0)
    return {
        "start_s": served_at - started_at, "process_s": served_at - spawned,
        "settled_s": settled_at - started_at, "shares": [len(log.serving) for log in logs],
        "joins": joins, "served_twice": len(served_twice(logs)),
        "lease_mismatch": mismatched + len(wanted - holders.keys()),
        "cpu_s": served_cpu, "wall_s": served_at - spawned,
        "settled_cpu_s": settled_cpu, "settled_wall_s": settled_at - spawned,
    }


async def failover(
    plan: Scenario, bots: list[Any], logs: list[BotLog], server: Any, password: str,
    addin: tuple[str, str],
) -> dict[str, Any]:
    from tests.bench.procs import CpuMeter
    from tests.bench.rawxmpp import RawClient, body_from

    changed = asyncio.Event()
    clients: list[RawClient] = []
    try:
        for index in range(JOINERS):
            client = RawClient(JOINER.format(index), "localhost", password, "bench")
            await client.connect("127.0.0.1", server.port, timeout=30)
            clients.append(client)
        admin = RawClient("admin", "localhost", password, "bench")
        await admin.connect("127.0.0.1", server.port, timeout=30)
        admin.presence()  # available: the bots' answers reach it
        clients.append(admin)
        joiners = [Joiner(client, changed) for client in clients[:JOINERS]]
        victim, survivors = logs[0], logs[1:]
        lost = sorted(victim.serving)
        k = plan.joiners_rooms
        half = JOINERS // 2
        before, gap = joiners[:half], joiners[half:]
        plan_before = {j: lost[i * k:(i + 1) * k] for i, j in enumerate(before)}
        plan_gap = {j: lost[len(lost) - (i + 1) * k:len(lost) - i * k] for i, j in enumerate(gap)}
        # Joiners before the kill: each welcomed once, by the process about to go.
        for joiner, rooms in plan_before.items():
            joiner.join(rooms)
        ok = await joiners_until(joiners, changed, lambda: all(
            j.welcomes[r] for j, rs in plan_before.items() for r in rs), 30)
        if not ok:
            raise TimeoutError("cluster: the joiners before the kill were not all welcomed")
        names = {f"addinbot{i}": bot.bot_pid for i, bot in enumerate(bots[1:], 1)}
        meter = CpuMeter({"prosody": server.pid, **names}).start()
        killed_at = now_wall()
        await bots[0].kill()
        # The gap: once the server has ended the killed process's session (those in its
        # rooms see it leave), and before another process takes its rooms.
        await joiners_until(joiners, changed, lambda: any(j.bot_left for j in before), 10)
        for joiner, rooms in plan_gap.items():
            joiner.join(rooms)
        for room in victim.serving:  # out of them with its session (its log says nothing)
            victim.events.append((killed_at, -1, room))
        victim.serving.clear()
        wanted = set(lost)
        await until(survivors, lambda: served_once(survivors, wanted), max(60.0, len(lost) / 20),
                    "the killed process's rooms served again")
        taken_at = max(log.joined_at[room] for log in survivors for room in wanted & log.serving)
        cpu = meter.stop()
        told = await joiners_until(joiners, changed, lambda: all(
            j.welcomes[r] for j, rs in plan_gap.items() for r in rs), 30)
        # A round trip through every survivor: what it sent before has arrived.
        for log in survivors:
            reply = admin.expect(lambda s, r=log.resource: body_from(s, r, bare=False, kind="chat"))
            admin.message(log.resource or "", "help")
            await asyncio.wait_for(reply, 30)
        counts = [(j.nick, r, j.welcomes[r]) for j, rs in (plan_before | plan_gap).items()
                  for r in rs]
        gap_counts = [(j.welcomes[r], j.bot_there.get(r)) for j, rs in plan_gap.items() for r in rs]
        extra = Counter(room for j in joiners for room in j.welcomes) - Counter(
            r for rs in (plan_before | plan_gap).values() for r in rs)
        return {
            "lost": lost, "rooms": len(lost), "failover_s": taken_at - killed_at,
            "cpu_s": cpu, "wall_s": taken_at - killed_at,
            "served_twice": len(served_twice(logs)),
            "shares_after": [len(log.serving) for log in survivors],
            "joiners_before": sum(len(rs) for rs in plan_before.values()),
            "joiners_before_told_once": sum(1 for j, rs in plan_before.items() for r in rs
                                            if j.welcomes[r] == 1),
            "gap_joiners": len(gap_counts),
            "gap_joiners_told": sum(1 for n, _ in gap_counts if n >= 1),
            "gap_joiners_bot_absent": sum(1 for _, there in gap_counts if there is False),
            "gap_all_told_in_time": told,
            "told_twice": sum(1 for _, _, n in counts if n > 1) + sum(extra.values()),
            "welcomes": {f"{nick} {room}": n for nick, room, n in counts},
        }
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def run(
    *, work: Path, pg_url: str, quick: bool, password: str, lua_profile: Path | None,
    rooms: list[int] | None = None, lease: tuple[float, float] | None = None,
) -> dict[str, Any]:
    from tests.bench.procs import CpuMeter
    from tests.bench.server import BenchServer

    plans = QUICK if quick else FULL
    if rooms:  # --cluster-rooms: 4 processes (2 with --quick) and these room counts
        plans = tuple(Scenario(plans[0].processes, count, plans[0].lease_s, plans[0].renew_s,
                               plans[0].joiners_rooms) for count in rooms)
    if lease:  # --cluster-lease LEASE_S,RENEW_S
        plans = tuple(Scenario(plan.processes, plan.rooms, lease[0], lease[1],
                               plan.joiners_rooms) for plan in plans)
    most = max(plan.rooms for plan in plans)
    server = BenchServer(work / "prosody-cluster", accounts(password), rooms=most,
                         lua_profile=lua_profile)
    server.start()
    say(f"cluster: prosody on 127.0.0.1:{server.port}; creating {most:,} rooms")
    results: dict[str, Any] = {"scenarios": []}
    started = time.monotonic()
    try:
        meter = CpuMeter({"prosody": server.pid}).start()
        results["create"] = await create_rooms(server.port, password, room_names(most))
        results["create"]["cpu_s"] = meter.stop()
        say(f"cluster: {most:,} rooms created in {results['create']['created_s']:.1f} s")
        for plan in plans:
            results["scenarios"].append(
                await scenario(plan, server=server, pg_url=pg_url, work=work, password=password)
            )
    finally:
        server.stop()
        results["prosody_log_errors"] = server.log_errors()
        results["elapsed_s"] = time.monotonic() - started
    say(f"cluster: the part took {results['elapsed_s']:.0f} s")
    return results
