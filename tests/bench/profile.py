"""A readable summary of collapsed stacks — py-spy's (``--format raw``) for the bot, the
benchmark server's Lua profiler's for Prosody: where the time went, by function, self and
inclusive. ``python -m tests.bench --profile`` writes them to tests/bench/results/profile/, a
folder git ignores.

    python -m tests.bench.profile tests/bench/results/profile/profile-bot.txt.gz [--filter TEXT]
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r"^(.*) (\d+)$")
# Leaf frames of a thread that waits (py-spy counts some waits in C as busy): left out.
IDLE = ("selectors.py:EpollSelector.select", "concurrent/futures/thread.py:_worker",
        "threading.py:Condition.wait", "threading.py:Thread._wait_for_tstate_lock")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _function(frame: str) -> str:
    """``handle (slixmpp/xmlstream/xmlstream.py:123)`` -> ``slixmpp/xmlstream/xmlstream.py:handle``
    (line numbers dropped so one function is one entry)."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{match['func']}"


def _area(function: str) -> str:
    path = function.split(":", 1)[0]
    for prefix, name in (("bot/", "addinbot (bot/)"), ("store/", "addinbot (store/)"),
                         ("slixmpp/", "slixmpp"), ("sqlalchemy/", "SQLAlchemy"),
                         ("sqlmodel/", "SQLAlchemy"), ("alembic/", "Alembic"),
                         ("asyncio/", "asyncio"), ("concurrent/", "threads"),
                         ("threading", "threads"), ("modules/muc/", "Prosody: MUC"),
                         ("modules/", "Prosody: other modules"), ("net/", "Prosody: network"),
                         ("core/", "Prosody: core"), ("util/", "Prosody: util"),
                         ("bench/", "the benchmark's server modules")):
        if path.startswith(prefix):
            return name
    return "other"


def summarise(path: Path, top: int = 30, only: str | None = None) -> str:
    total = 0
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    for line in data.decode("utf-8", errors="replace").splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        stack, count = match[1], int(match[2])
        if only is not None and only not in stack:
            continue
        frames = [_function(f) for f in stack.split(";") if f.strip()]
        if not frames or frames[-1] in IDLE or any("importlib" in f for f in frames):
            continue  # waiting, or importing at start-up
        total += count
        own[frames[-1]] += count
        areas[_area(frames[-1])] += count
        for function in set(frames):
            inclusive[function] += count
    if total == 0:
        return "no samples\n"
    scope = f", stacks containing {only!r}" if only else ""
    out = [f"{total} samples (waits and start-up imports left out){scope}",
           "", "self time by area:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in areas.most_common()]
    out += ["", f"top {top} functions by self time:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    out += ["", f"top {top} functions by inclusive time:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.profile")
    parser.add_argument("stacks", type=Path)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--filter", help="only stacks containing this text")
    args = parser.parse_args(argv)
    sys.stdout.write(summarise(args.stacks, args.top, args.filter))
    return 0


if __name__ == "__main__":
    sys.exit(main())
