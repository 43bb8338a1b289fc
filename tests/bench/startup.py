"""Part 3, start-up at scale: join N remembered rooms, in a fresh process each time.

    python -m tests.bench.startup bot --config FILE --rooms N
    python -m tests.bench.startup bare --port P --user U --password PW --rooms N

``bot`` is ``addinbot run`` in all but name (bot.runner.Service, the same code): migrate,
connect, read the remembered rooms from its database and join them. ``bare`` is a bare
slixmpp client (tests/bench/bare.py) that connects and sends the same join stanzas for the
same rooms. Both count a room as joined when its own presence (status 110) is back. Each
prints one JSON line: seconds from the start call to the last room joined (``run_s``),
seconds since the interpreter started (``process_s``), and memory (RSS now and peak, MB).
The rooms are ``r0000@conference.localhost`` and on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import psutil

_T_PROCESS = psutil.Process().create_time()  # wall clock at process creation

ROOM_FORMAT = "r{:04d}@conference.localhost"


def room_names(count: int) -> list[str]:
    return [ROOM_FORMAT.format(i) for i in range(count)]


def memory() -> dict[str, float]:
    """This process's resident memory now and at its peak (VmHWM), in MB."""
    with open("/proc/self/status", encoding="ascii") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    return {
        "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
        "peak_rss_mb": int(fields["VmHWM"].split()[0]) / 1024,
    }


async def start_bot(args: argparse.Namespace) -> dict[str, Any]:
    from bot.config import load_settings
    from bot.runner import Service, configure_logging

    imported_rss = memory()["rss_mb"]
    settings = load_settings(args.config)
    configure_logging(settings.log.format)  # as `addinbot run` does: a line per room joined
    imported = time.time()
    started = time.monotonic()
    service = Service(settings)
    app, live, all_in = service.app, set(), asyncio.Event()
    on_presence = app.on_presence

    def watch(presence: Any) -> None:  # the edge calls app.on_presence for every presence
        on_presence(presence)
        if app.rooms.is_live(presence.room):
            live.add(presence.room)
            if len(live) >= args.rooms:
                all_in.set()

    app.on_presence = watch  # type: ignore[method-assign]
    await service.start()
    await asyncio.wait_for(all_in.wait(), 120)
    run_s = time.monotonic() - started
    done = time.time()
    result = {"run_s": run_s, "process_s": done - _T_PROCESS,
              "imports_s": imported - _T_PROCESS, "imports_rss_mb": imported_rss, **memory()}
    await service.stop()
    return result


async def start_bare(args: argparse.Namespace) -> dict[str, Any]:
    from slixmpp import JID

    from tests.bench.bare import Peer

    imported_rss = memory()["rss_mb"]
    imported = time.time()
    started = time.monotonic()
    client = Peer(f"{args.user}@localhost", args.password, "AddinBot")
    joined: set[str] = set()
    all_in = asyncio.Event()

    def on_presence(pres: Any) -> None:
        if pres["from"].resource == "AddinBot" and 110 in _codes(pres):
            joined.add(pres["from"].bare)
            if len(joined) >= args.rooms:
                all_in.set()

    client.add_event_handler("groupchat_presence", on_presence)
    client.connect("127.0.0.1", args.port)
    await asyncio.wait_for(client.online.wait(), 20)
    muc = client.plugin["xep_0045"]
    for room in room_names(args.rooms):
        muc.make_join_stanza(JID(room), "AddinBot", maxstanzas=0).send()
    await asyncio.wait_for(all_in.wait(), 120)
    run_s = time.monotonic() - started
    done = time.time()
    result = {"run_s": run_s, "process_s": done - _T_PROCESS,
              "imports_s": imported - _T_PROCESS, "imports_rss_mb": imported_rss, **memory()}
    await client.disconnect(wait=5.0)
    return result


def _codes(pres: Any) -> set[int]:
    x = pres.xml.find("{http://jabber.org/protocol/muc#user}x")
    if x is None:
        return set()
    return {
        int(s.get("code", "0"))
        for s in x.findall("{http://jabber.org/protocol/muc#user}status")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.startup")
    parser.add_argument("mode", choices=("bot", "bare"))
    parser.add_argument("--rooms", type=int, required=True)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--port", type=int)
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args(argv)
    runner = start_bot if args.mode == "bot" else start_bare
    result = asyncio.run(runner(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())


# --- the driver, run by the benchmark ------------------------------------------------------


async def run(port: int, workdir: Any, log_dir: Any, rooms: int, rounds: int) -> dict[str, Any]:
    """Alternate bare and bot start-ups (after one bare warm-up that creates the rooms)."""
    from sqlalchemy import insert

    from store.database import make_engine
    from store.migrate import upgrade
    from store.models import Pool, Room
    from tests.bench import scene
    from tests.bench.procs import Worker, python_module, write_bot_config

    url = f"sqlite:///{workdir}/startup.db"
    engine = make_engine(url)
    try:
        upgrade(engine)
        with engine.begin() as connection:
            pool_id = connection.execute(insert(Pool).values(name=scene.MUC)).inserted_primary_key
            connection.execute(insert(Room), [
                {"jid": room, "pool_id": pool_id[0], "joined": True} for room in room_names(rooms)
            ])
    finally:
        engine.dispose()
    config = write_bot_config(
        workdir / "startup.toml", port=port, db_url=url, password=scene.PASSWORD,
        admins=[f"{scene.ADMIN}@{scene.DOMAIN}"], pools=[scene.MUC],
    )
    bare_args = ["--port", str(port), "--user", scene.BARE, "--password", scene.PASSWORD]
    argv = {
        "bare": python_module("tests.bench.startup", "bare", "--rooms", str(rooms), *bare_args),
        "bot": python_module("tests.bench.startup", "bot", "--rooms", str(rooms),
                             "--config", str(config)),
    }
    results: dict[str, list[dict[str, Any]]] = {"bare": [], "bot": []}

    async def once(kind: str) -> dict[str, Any]:
        worker = Worker(f"startup-{kind}", argv[kind], log_dir)
        result = await worker.start(timeout=180)
        await worker.stop(timeout=30)
        await asyncio.sleep(0.5)  # the server takes the leaves before the next start
        return result

    await once("bare")  # creates the rooms (persistent): every measured run finds them
    for _ in range(rounds):
        for kind in ("bare", "bot"):
            results[kind].append(await once(kind))
    return {"rooms": rooms, "runs": results}
