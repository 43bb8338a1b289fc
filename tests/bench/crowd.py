"""A crowd of raw XMPP clients in one process, driven by JSON lines on stdin:

    python -m tests.bench.crowd --port P --password PW --first 0 --count 250

Each member is a ``RawClient`` whose nickname is its account name. It notes three times
per round (``time.monotonic()``, comparable across processes): when its join was sent,
when its own presence (status 110) came back, and when the first private message through
the room arrived (for the join storm: the add-in link). Commands:

- ``{"op": "join", "room": R}``: every member joins R at once; answered when all are in.
- ``{"op": "arm"}``: forget the private messages seen so far.
- ``{"op": "collect", "timeout": S}``: answered when every member has had a private
  message through the room (or after S seconds), with the times.
- ``{"op": "leave", "room": R}``: every member leaves; answered when all are out.
- ``{"op": "quit"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from tests.bench.rawxmpp import (
    BODY,
    MESSAGE,
    OOB_URL,
    PRESENCE,
    RawClient,
    Stanza,
    is_self_presence,
)
from tests.bench.server import CROWD_PREFIX

CONNECT_AT_ONCE = 50


def crowd_user(index: int) -> str:
    return f"{CROWD_PREFIX}{index:04d}"


class Member:
    def __init__(self, client: RawClient, crowd: Crowd) -> None:
        self.client = client
        self.crowd = crowd
        self.nick = client.user
        self.room = ""
        self.occupant = ""
        self.t_sent: float | None = None
        self.t_self: float | None = None
        self.t_pm: float | None = None
        self.t_left: float | None = None
        self.oob = False
        self.stanzas = 0
        client.on_stanza = self.on_stanza

    def on_stanza(self, stanza: Stanza, arrived: float) -> None:
        self.stanzas += 1
        if stanza.tag == PRESENCE:
            if not is_self_presence(stanza, self.occupant):
                return
            if stanza.get("type") == "unavailable":
                if self.t_left is None:
                    self.t_left = arrived
                    self.crowd.changed()
            elif self.t_self is None:
                self.t_self = arrived
                self.crowd.changed()
        elif stanza.tag == MESSAGE and self.t_pm is None and stanza.get("type") == "chat":
            sender = stanza.get("from", "")
            if sender.startswith(self.room + "/") and stanza.findtext(BODY):
                self.t_pm = arrived
                self.oob = stanza.findtext(OOB_URL) is not None
                self.crowd.changed()

    def join(self, room: str) -> None:
        self.room, self.occupant = room, f"{room}/{self.nick}"
        self.t_self = self.t_pm = self.t_left = None
        self.oob = False
        self.t_sent = self.client.join(room, self.nick)

    def leave(self) -> None:
        self.t_left = None
        self.client.leave(self.room, self.nick)


class Crowd:
    def __init__(self, members: list[Member] | None = None) -> None:
        self.members = members or []
        self._changed = asyncio.Event()

    def changed(self) -> None:
        self._changed.set()

    async def until(self, done: Any, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            self._changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                async with asyncio.timeout(left):
                    await self._changed.wait()
            except TimeoutError:
                return done()
        return True


async def connect_all(args: argparse.Namespace, crowd: Crowd) -> float:
    started = time.monotonic()
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def one(index: int) -> Member:
        async with gate:
            client = RawClient(crowd_user(index), "localhost", args.password, "crowd")
            await client.connect("127.0.0.1", args.port, timeout=30)
            return Member(client, crowd)

    crowd.members = list(
        await asyncio.gather(*(one(i) for i in range(args.first, args.first + args.count)))
    )
    return time.monotonic() - started


async def serve(args: argparse.Namespace) -> int:
    crowd = Crowd()
    took = await connect_all(args, crowd)
    out({"ready": len(crowd.members), "connect_s": took})
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    members = crowd.members
    while line := await reader.readline():
        command = json.loads(line)
        op = command["op"]
        timeout = float(command.get("timeout", 30))
        if op == "quit":
            break
        if op == "join":
            for member in members:
                member.join(command["room"])
            ok = await crowd.until(lambda: all(m.t_self is not None for m in members), timeout)
            out({"op": op, "ok": ok, "t_sent": [m.t_sent for m in members],
                 "t_self": [m.t_self for m in members]})
        elif op == "arm":
            for member in members:
                member.t_pm, member.oob = None, False
            out({"op": op, "ok": True})
        elif op == "collect":
            ok = await crowd.until(lambda: all(m.t_pm is not None for m in members), timeout)
            out({"op": op, "ok": ok, "t_pm": [m.t_pm for m in members],
                 "oob": sum(m.oob for m in members),
                 "stanzas": sum(m.stanzas for m in members)})
        elif op == "leave":
            for member in members:
                member.leave()
            ok = await crowd.until(lambda: all(m.t_left is not None for m in members), timeout)
            out({"op": op, "ok": ok})
    await asyncio.gather(*(m.client.close() for m in members))
    return 0


def out(data: dict[str, Any]) -> None:
    print(json.dumps(data), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.crowd")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    return asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
