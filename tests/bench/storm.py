"""Part 2, the join storm: the whole crowd joins one room at once.

Per round, the same crowd in four fresh rooms:

0. joins only: nobody to tell anything; how long the server takes to let everyone in.
   No announcer can serve a joiner before its join is through: this is their ceiling.
1. raw send rate (the baseline): the crowd sits in a room with ``sender`` (the bot's XMPP
   edge with no bot); it sends every member one private message through the room, the
   stanza an announcement is. Rate = messages / (last arrival - first send).
2. bare announcer: the crowd joins a room where a bare slixmpp client tells each arrival
   that same message, with nothing behind it: what the server and slixmpp allow.
3. addinbot: the crowd joins a room that has an add-in, with the bot in it.
   Rate = joiners served / (last link arrived - first join sent).
4. and 5. the same two, held: the announcer (bare, then addinbot) is stopped (SIGSTOP)
   while the crowd joins and continued (SIGCONT) once every joiner is in, so the joins
   wait for it in its socket. Rate = joiners served / (last link arrived - continued):
   how fast it tells a crowd that is already in, which is what the raw send rate measures
   for plain messages. In 2 and 3 the server lets the crowd in while the announcements
   go out, on the same core, so those rates are the server's as much as the announcer's.

CPU seconds of every process are taken over each phase, to show who was busy.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
from typing import Any

from tests.bench import scene
from tests.bench.crowd import crowd_user
from tests.bench.procs import CpuMeter, Worker

COLLECT_TIMEOUT_S = 60.0


class Crowd:
    """The crowd's worker processes, addressed as one."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers

    async def ask(self, command: dict[str, Any], timeout: float = 90.0) -> dict[str, Any]:
        for worker in self.workers:
            worker.tell(command)
        answers = [await worker.read(timeout) for worker in self.workers]
        merged: dict[str, Any] = {"ok": all(a.get("ok", True) for a in answers)}
        for answer in answers:
            for key, value in answer.items():
                if isinstance(value, list):
                    merged.setdefault(key, []).extend(value)
                elif isinstance(value, int | float) and not isinstance(value, bool):
                    merged[key] = merged.get(key, 0) + value
        return merged


def _served(times: list[float | None]) -> list[float]:
    return [t for t in times if t is not None]


def _storm_summary(joined: dict[str, Any], got: dict[str, Any]) -> dict[str, Any]:
    t_sent, t_self, t_pm = joined["t_sent"], joined["t_self"], got["t_pm"]
    start = min(t_sent)
    served = _served(t_pm)
    end = max(served) if served else start
    latencies = [
        (pm - me) * 1000 for me, pm in zip(t_self, t_pm, strict=True)
        if pm is not None and me is not None
    ]
    return {
        "joiners": len(t_sent),
        "served": len(served),
        "with_link": got.get("oob", 0),
        "joined_s": max(_served(t_self)) - start if _served(t_self) else None,
        "all_served_s": end - start,
        "rate": len(served) / (end - start) if end > start else 0.0,
        "latency_ms": latencies,
        "latency_median_ms": statistics.median(latencies) if latencies else None,
    }


def _held_summary(joined: dict[str, Any], got: dict[str, Any], continued: float
                  ) -> dict[str, Any]:
    served = _served(got["t_pm"])
    end = max(served) if served else continued
    return {
        "joiners": len(joined["t_sent"]),
        "joined": len(_served(joined["t_self"])),
        "served": len(served),
        "with_link": got.get("oob", 0),
        "all_served_s": end - continued,
        "rate": len(served) / (end - continued) if end > continued else 0.0,
        "arrival_ms": [(t - continued) * 1000 for t in served],
    }


async def held_storm(crowd: Crowd, pid: int, room: str, pids: dict[str, int | None]
                     ) -> dict[str, Any]:
    """The crowd joins ``room`` while ``pid`` (its announcer) is stopped; then it goes on.
    CPU is taken from then on: who is busy while the joins waiting for it are answered."""
    os.kill(pid, signal.SIGSTOP)
    try:
        joined = await crowd.ask({"op": "join", "room": room})
    finally:
        meter = CpuMeter(pids).start()
        continued = time.monotonic()
        os.kill(pid, signal.SIGCONT)
    got = await crowd.ask({"op": "collect", "timeout": COLLECT_TIMEOUT_S})
    return _held_summary(joined, got, continued) | {"cpu_s": meter.stop()}


def _joins_summary(joined: dict[str, Any]) -> dict[str, Any]:
    start = min(joined["t_sent"])
    done = _served(joined["t_self"])
    end = max(done) if done else start
    return {
        "joiners": len(joined["t_sent"]),
        "joined": len(done),
        "all_served_s": end - start,  # here: all joins through
        "rate": len(done) / (end - start) if end > start else 0.0,
        "joined_ms": [(t - start) * 1000 for t in done],
    }


def _raw_summary(sent: dict[str, Any], got: dict[str, Any]) -> dict[str, Any]:
    served = _served(got["t_pm"])
    start = sent["t_first"]
    end = max(served) if served else start
    return {
        "messages": len(got["t_pm"]),
        "served": len(served),
        "with_link": got.get("oob", 0),
        "all_served_s": end - start,
        "send_loop_s": sent["t_queued"] - start,
        "rate": len(served) / (end - start) if end > start else 0.0,
        "arrival_ms": [(t - start) * 1000 for t in served],
    }


async def run(
    crowd: Crowd, sender: Worker, pids: dict[str, int | None], rounds: int, size: int,
) -> dict[str, Any]:
    nicks = [crowd_user(i) for i in range(size)]
    results: dict[str, list[dict[str, Any]]] = {
        "joins": [], "raw": [], "bare": [], "bot": [], "bare_held": [], "bot_held": [],
    }
    held_pids = {"bare_held": pids["announcer"], "bot_held": pids["addinbot"]}
    for round_ in range(rounds):
        # 0. joins only.
        room = scene.storm_room("joins", round_)
        meter = CpuMeter(pids).start()
        joined = await crowd.ask({"op": "join", "room": room})
        results["joins"].append(_joins_summary(joined) | {"cpu_s": meter.stop()})
        await crowd.ask({"op": "leave", "room": room})

        # 1. raw send rate: the crowd is in the room first, then the sender sends.
        room = scene.storm_room("raw", round_)
        joined = await crowd.ask({"op": "join", "room": room})
        if not joined["ok"]:
            raise RuntimeError(f"the crowd could not join {room}")
        await crowd.ask({"op": "arm"})
        meter = CpuMeter(pids).start()
        sent = await sender.ask({"op": "send", "room": room, "nicks": nicks})
        got = await crowd.ask({"op": "collect", "timeout": COLLECT_TIMEOUT_S})
        summary = _raw_summary(sent, got)
        summary["cpu_s"] = meter.stop()
        results["raw"].append(summary)
        await crowd.ask({"op": "leave", "room": room})

        # 2 and 3: the storms.
        for kind in ("bare", "bot"):
            room = scene.storm_room(kind, round_)
            meter = CpuMeter(pids).start()
            joined = await crowd.ask({"op": "join", "room": room})
            got = await crowd.ask({"op": "collect", "timeout": COLLECT_TIMEOUT_S})
            summary = _storm_summary(joined, got)
            summary["cpu_s"] = meter.stop()
            results[kind].append(summary)
            await crowd.ask({"op": "leave", "room": room})
            await asyncio.sleep(0.2)  # let the leaves settle before the next storm

        # 4 and 5: the storms, held.
        for kind, pid in held_pids.items():
            if pid is None:
                raise RuntimeError(f"no process to hold for {kind}")
            room = scene.storm_room(kind, round_)
            results[kind].append(await held_storm(crowd, pid, room, pids))
            await crowd.ask({"op": "leave", "room": room})
            await asyncio.sleep(0.2)
    return {"crowd": size, "rounds": results}
