"""`addinbot demo`: the whole loop on a local server, printed as a transcript.

An admin registers an add-in by direct message, a room owner attaches it in the room, and a
participant who joins receives the link — three real XMPP clients talking to the running
bot, so a newcomer sees the product work without installing a chat client.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import slixmpp
from slixmpp import JID

from bot.config import XmppSettings
from bot.xmpp.client import configure_transport

STEP_TIMEOUT_S = 15.0
ADDIN = ("Stock Ticker", "https://stocks.example.org/panel")


class DemoClient(slixmpp.ClientXMPP):
    """A minimal person at a chat client: says things, and keeps what it is told."""

    def __init__(self, jid: str, password: str, settings: XmppSettings) -> None:
        super().__init__(jid, password)
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.presences: asyncio.Queue[Any] = asyncio.Queue()
        self.register_plugin("xep_0045")
        self.register_plugin("xep_0066")
        configure_transport(self, settings)
        self._started = asyncio.Event()
        self.add_event_handler("session_start", self._session_start)
        self.add_event_handler("message", self.inbox.put_nowait)
        self.add_event_handler("groupchat_presence", self.presences.put_nowait)

    def _session_start(self, _event: Any) -> None:
        self.send_presence()
        self._started.set()

    async def online(self, settings: XmppSettings) -> None:
        self.connect(settings.server_host, settings.server_port)
        await asyncio.wait_for(self._started.wait(), STEP_TIMEOUT_S)

    async def next(self, want: Any) -> Any:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while True:
            message = await asyncio.wait_for(self.inbox.get(), deadline - time.monotonic())
            if want(message):
                return message

    async def join(self, room: str, nick: str) -> None:
        await self.plugin["xep_0045"].join_muc_wait(
            JID(room), nick, maxstanzas=0, timeout=STEP_TIMEOUT_S
        )


def _say(who: str, text: str) -> None:
    for number, line in enumerate(text.splitlines() or [""]):
        print(f"{who if number == 0 else '':>12} | {line}", flush=True)


async def demo(
    settings: XmppSettings, *, admin: str, manager: str, participant: str, password: str,
    room: str,
) -> None:
    bot = settings.jid
    people = {
        name: DemoClient(jid, password, settings)
        for name, jid in (("admin", admin), ("manager", manager), ("participant", participant))
    }
    try:
        await asyncio.gather(*(person.online(settings) for person in people.values()))
        boss, owner, guest = people["admin"], people["manager"], people["participant"]

        async def ask(text: str) -> None:
            _say(admin, text)
            boss.send_message(mto=JID(bot), mbody=text, mtype="chat")
            reply = await boss.next(lambda m: m["from"].bare == bot and m["type"] == "chat")
            _say(bot, reply["body"])

        print(f"— {admin} (an admin) talks to the bot by direct message")
        name, url = ADDIN
        await ask("help")
        await ask(f'register "{name}" {url}')
        await ask("list")

        print(f"— {manager} opens {room} (and so owns it); the admin asks the bot in")
        await owner.join(room, "manager")
        await ask(f"join {room}")
        await _wait_for_nick(owner, room, settings.nick)

        print("— the room's owner attaches the add-in in the room")
        text = f'!addin attach "{name}"'
        _say("manager", text)
        owner.send_message(mto=JID(room), mbody=text, mtype="groupchat")
        said = await owner.next(
            lambda m: m["type"] == "groupchat" and m["from"].resource == settings.nick
        )
        _say(f"{settings.nick} (room)", said["body"] + _link(said))

        print(f"— {participant} joins the room and is told privately")
        await guest.join(room, "participant")
        told = await guest.next(lambda m: m["from"].bare == room and m["type"] == "chat")
        _say(f"{settings.nick} (private)", told["body"] + _link(told))
    finally:
        for person in people.values():
            person.disconnect()


async def _wait_for_nick(client: DemoClient, room: str, nick: str) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while True:
        presence = await asyncio.wait_for(client.presences.get(), deadline - time.monotonic())
        if presence["from"].bare == room and presence["from"].resource == nick:
            return


def _link(message: Any) -> str:
    url = message["oob"]["url"]
    return f"\n  (link attached: {url})" if url else ""
