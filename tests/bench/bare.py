"""A bare slixmpp client: plaintext on loopback like the bot, the basic plugins a MUC bot
needs (disco, MUC, OOB, ping, delay), and nothing else. Imports only slixmpp, so a process
built on it starts as light as such a client can."""

from __future__ import annotations

import asyncio
from typing import Any

import slixmpp
from slixmpp import JID

PLUGINS = ("xep_0030", "xep_0045", "xep_0066", "xep_0199", "xep_0203")


def plain(client: slixmpp.ClientXMPP) -> None:
    """Plaintext c2s on loopback, as the bot's tls = "plain"."""
    client.enable_direct_tls = False
    client.enable_starttls = False
    client.enable_plaintext = True
    client.plugin["feature_mechanisms"].unencrypted_plain = True
    client.whitespace_keepalive = False


class Peer(slixmpp.ClientXMPP):
    """A bare slixmpp client with the basic plugins."""

    def __init__(self, jid: str, password: str, nick: str) -> None:
        super().__init__(jid, password)
        for plugin in PLUGINS:
            self.register_plugin(plugin)
        plain(self)
        self.nick = nick
        self.sent = 0
        self.online = asyncio.Event()
        self.add_event_handler("session_start", self._session_start)

    def _session_start(self, _event: Any) -> None:
        self.send_presence()
        self.online.set()

    async def join_rooms(self, rooms: list[str]) -> None:
        muc = self.plugin["xep_0045"]
        await asyncio.gather(
            *(muc.join_muc_wait(JID(r), self.nick, maxstanzas=0, timeout=20) for r in rooms)
        )
