"""Baseline peers, each in a process of its own like the bot, driven by JSON lines on stdin:

    python -m tests.bench.peers MODE --port P --user U --password PW [--room R ...]

- ``echo``: a bare slixmpp echo bot (tests/bench/bare.py): answers every chat message
  with its body (``big N``: with N characters), and every ``!echo …`` said in a room with
  the rest of the line, said in the room.
- ``sender``: the bot's own XMPP edge (bot.xmpp.client.XmppEdge) without the bot: on
  ``{"op": "send", ...}`` it sends one private message through the room to each nickname,
  the same stanza the bot sends a joiner (sentence and XEP-0066 link), as fast as it can.
- ``announcer``: a bare slixmpp client that sends that private message to every occupant
  who arrives after it joined: the bot's announcement with no bot behind it.

Each prints ``{"ready": ...}`` once it is in its rooms, answers ``{"op": "stats"}`` and
stops on ``{"op": "quit"}`` or end of input. Times are ``time.monotonic()`` (system-wide).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import xml.etree.ElementTree as ET
from typing import Any

from slixmpp import JID

from bot.config import XmppSettings
from bot.rooms import SELF as SELF_PRESENCE
from bot.values import Link, Presence
from bot.xmpp import stanzas
from bot.xmpp.client import NS_MUC_USER, XmppEdge, add_link
from tests.bench.bare import Peer

# A line like those of a `list` answer, for an echo as long as one.
BIG_LINE = "“Add-in 000” — https://addins.example.org/panel/000 — used by 1 room\n"


class Echo(Peer):
    def __init__(self, jid: str, password: str, nick: str) -> None:
        super().__init__(jid, password, nick)
        self.add_event_handler("message", self._chat)
        self.add_event_handler("groupchat_message", self._groupchat)

    def _chat(self, msg: Any) -> None:
        body = msg["body"]
        if msg["type"] in ("chat", "normal") and body:
            size = body.removeprefix("big ")
            if size != body and size.isdigit():  # "big N": an answer N characters long
                body = (BIG_LINE * (1 + int(size) // len(BIG_LINE)))[: int(size)]
            msg.reply(body).send()
            self.sent += 1

    def _groupchat(self, msg: Any) -> None:
        body = msg["body"]
        if msg["mucnick"] == self.nick or not body.startswith("!echo"):
            return
        if msg.xml.find("{urn:xmpp:delay}delay") is not None:
            return
        self.make_message(mto=msg["from"].bare, mbody=body[5:].strip() or "echo",
                          mtype="groupchat").send()
        self.sent += 1


class Announcer(Peer):
    """Tells every occupant who arrives after its own join, once, with no store behind it."""

    def __init__(self, jid: str, password: str, nick: str, text: str, link: Link) -> None:
        super().__init__(jid, password, nick)
        self.text = text
        self.link = link
        self.live: set[str] = set()
        self.present: dict[str, set[str]] = {}
        self.add_event_handler("groupchat_presence", self._presence)

    def _presence(self, pres: Any) -> None:
        room, nick = pres["from"].bare, pres["from"].resource
        occupants = self.present.setdefault(room, set())
        if pres["type"] == "unavailable":
            occupants.discard(nick)
            return
        if nick == self.nick:
            self.live.add(room)
            return
        if nick in occupants:
            return
        occupants.add(nick)
        if room in self.live:
            stanza = self.make_message(mto=JID(f"{room}/{nick}"), mbody=self.text, mtype="chat")
            stanza.append(ET.Element(f"{{{NS_MUC_USER}}}x"))
            add_link(stanza.xml, self.link)
            stanza.send()
            self.sent += 1


class Sender(XmppEdge):
    """The bot's XMPP edge, with no bot: sends what it is told to."""

    def __init__(self, settings: XmppSettings, password: str) -> None:
        super().__init__(settings, password, [])
        self.whitespace_keepalive = False
        self.sent = 0
        self._joining: dict[str, asyncio.Future[None]] = {}
        self.muc.to_presence = self._to_presence  # type: ignore[method-assign]

    async def join_rooms(self, rooms: list[str]) -> None:
        """Join as the bot does (its room presences never reach slixmpp's MUC plugin)."""
        loop = asyncio.get_running_loop()
        self._joining = {room.lower(): loop.create_future() for room in rooms}
        for room in rooms:
            self.join(room, self.settings.nick)
        async with asyncio.timeout(20):
            await asyncio.gather(*self._joining.values())

    def _to_presence(self, xml: ET.Element) -> Presence | None:
        """The edge's reading of a room presence, watched for the edge's own joins."""
        presence = stanzas.to_presence(xml, vouches_for_ids=lambda _room: False)
        if presence is not None and presence.available and SELF_PRESENCE in presence.codes:
            joined = self._joining.get(presence.room)
            if joined is not None and not joined.done():
                joined.set_result(None)
        return presence

    def send_all(self, room: str, nicks: list[str], text: str, link: Link) -> dict[str, float]:
        first = time.monotonic()
        for nick in nicks:
            self.send_private(room, nick, text, link)
        self.sent += len(nicks)
        return {"t_first": first, "t_queued": time.monotonic()}


def build(args: argparse.Namespace) -> Any:
    jid = f"{args.user}@localhost"
    link = Link(args.url, args.name)
    if args.mode == "echo":
        return Echo(jid, args.password, args.nick)
    if args.mode == "announcer":
        return Announcer(jid, args.password, args.nick, args.text, link)
    settings = XmppSettings(
        jid=jid, password=args.password, host="127.0.0.1", port=args.port, tls="plain",
        nick=args.nick,
    )
    return Sender(settings, args.password)


async def serve(args: argparse.Namespace) -> int:
    client = build(args)
    if isinstance(client, Sender):
        client.start()
    else:
        client.connect("127.0.0.1", args.port)
    await asyncio.wait_for(client.online.wait(), 20)
    await client.join_rooms(args.room)
    out({"ready": client.boundjid.full, "rooms": args.room})
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    link = Link(args.url, args.name)
    while line := await reader.readline():
        command = json.loads(line)
        op = command["op"]
        if op == "quit":
            break
        if op == "send":
            out(client.send_all(command["room"], command["nicks"], args.text, link))
        elif op == "stats":
            out({"sent": client.sent})
    if isinstance(client, Sender):
        await client.stop()
    else:
        await client.disconnect(wait=2.0)
    return 0


def out(data: dict[str, Any]) -> None:
    print(json.dumps(data), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.peers")
    parser.add_argument("mode", choices=("echo", "sender", "announcer"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--nick", default="Peer")
    parser.add_argument("--room", action="append", default=[])
    parser.add_argument("--text", default="")
    parser.add_argument("--url", default="https://example.org/")
    parser.add_argument("--name", default="Add-in")
    return asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
