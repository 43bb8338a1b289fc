"""The XMPP edge: the only code that speaks slixmpp.

It connects, authenticates, reconnects with back-off, and turns plain replies into stanzas,
sent through slixmpp's own send queue. What it receives is read by bot.xmpp.muc (a slixmpp
plugin: rooms, messages, invitations) into plain values for the bot.

Beside it: bot.xmpp.liveness (pings to the server and self-pings to rooms), stream
management (XEP-0198: a dropped connection is resumed, with its rooms, where the server
allows it), bot.xmpp.adhoc and bot.xmpp.panel (the ad-hoc commands), and the bot's identity
(disco: client/bot "addinbot"; XEP-0092 version). Only the plugins named in PLUGINS are
loaded, and each one the bot calls is reached through a typed method here.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
from collections.abc import Coroutine
from typing import Any

import slixmpp
from slixmpp import JID
from slixmpp.exceptions import IqError, IqTimeout

from bot import __version__
from bot.config import XmppSettings
from bot.metrics import METRICS
from bot.values import Link
from bot.xmpp import invites, muc, stanzas
from bot.xmpp.adhoc import AdhocCommands
from bot.xmpp.liveness import Liveness
from bot.xmpp.protocols import Bot

log = logging.getLogger(__name__)

NS_MUC_USER = stanzas.NS_MUC_USER

BACKOFF_FIRST_S = 1.0
BACKOFF_MOST_S = 60.0
MOST_HELD = 1000  # stanzas kept while a resumable stream is away; the oldest go first
IDENTITY = ("client", "bot", "addinbot")  # XEP-0030 category, type, name
# xep_0004: the panel's forms; xep_0030: disco; xep_0066: out-of-band links (announced as a
# feature); xep_0199: pings; xep_0198: stream management; the bot's own MUC handling.
PLUGINS = ("xep_0004", "xep_0030", "xep_0066", "xep_0199", "xep_0198", muc.NAME)
# Linux: acknowledge what was read at once rather than up to 40 ms later (see data_received).
QUICKACK = getattr(socket, "TCP_QUICKACK", None)

__all__ = ["NS_MUC_USER", "Bot", "XmppEdge", "add_link", "configure_transport"]
add_link = stanzas.add_link


def configure_transport(client: slixmpp.ClientXMPP, settings: XmppSettings) -> None:
    """TLS as configured: STARTTLS, direct TLS, or (loopback only, checked by the config)
    plain text; server certificates are always verified, against `ca_file` if given."""
    client.enable_direct_tls = settings.tls == "direct"
    client.enable_starttls = settings.tls == "starttls"
    client.enable_plaintext = settings.tls == "plain"
    if settings.tls == "plain":
        client.plugin["feature_mechanisms"].unencrypted_plain = True
    if settings.ca_file is not None:
        client.ca_certs = settings.ca_file


# Presence priorities with several processes on one account (cluster.enabled): the server
# delivers a chat message sent to the bare JID only to the available resources of the highest
# priority of at least 0 (RFC 6121 8.5.2.1.1; Prosody 0.12: util/presence.lua), so only the
# process holding the desk has a priority of 0 or more.
DESK_PRIORITY = 1
BACK_PRIORITY = -1


class XmppEdge(slixmpp.ClientXMPP):
    def __init__(
        self, settings: XmppSettings, password: str, services: list[str], *,
        resource: str | None = None, desk: bool = True,
    ) -> None:
        """`resource`: instead of settings.resource (one per process when several share the
        account); `desk`: whether to answer what is sent to the bare JID (set_desk)."""
        full_jid = settings.full_jid if resource is None else f"{settings.jid}/{resource}"
        super().__init__(full_jid, password)
        self.desk = desk
        self.shared = resource is not None  # several processes: the priority says who answers
        self.settings = settings
        self.services = frozenset(services)  # the MUC services served: their JIDs are rooms
        self.bot: Bot | None = None
        self._stopping = False
        self._backoff = BACKOFF_FIRST_S
        self._reconnect: asyncio.TimerHandle | None = None
        self.online = asyncio.Event()
        self._in_session = False  # bound, and not known to have ended
        self._suspended = False  # the connection dropped; the stream may yet be resumed
        self._held: collections.deque[Any] = collections.deque(maxlen=MOST_HELD)
        self._tasks: set[asyncio.Task[None]] = set()
        for plugin in PLUGINS:
            self.register_plugin(plugin)
        self.register_plugin("xep_0092", {"name": IDENTITY[2], "version": __version__})
        self.muc = self._muc_plugin()
        self.liveness = Liveness(self)
        self.add_filter("in", self.liveness.heard_stream)
        self.adhoc = AdhocCommands(self)
        configure_transport(self, settings)
        self.add_event_handler("session_bind", self._session_bind)
        self.add_event_handler("session_start", self._session_start)
        self.add_event_handler("session_resumed", self._session_resumed)
        self.add_event_handler("session_end", self._session_end)
        self.add_event_handler("disconnected", self._disconnected)
        self.add_event_handler("failed_auth", self._failed_auth)
        self.add_event_handler("presence_available", self._sibling_presence)
        self.add_event_handler("presence_unavailable", self._sibling_presence)
        self.add_filter("out", self._xml_safe)
        # Memory at thousands of rooms (README "Performance"): slixmpp keeps every disco#info
        # answer (the rooms' configuration questions: ~13 KB a room), and its roster a copy of
        # every presence sent, per address (a join per room: ~2.6 KB). The bot reads neither.
        self.disco.use_cache = False
        self.add_filter("out", self._forget_sent_presence)

    def _muc_plugin(self) -> muc.MucPlugin:
        plugins: Any = self.plugin  # (typed for slixmpp's own plugin names only)
        plugin = plugins[muc.NAME]
        if not isinstance(plugin, muc.MucPlugin):
            raise TypeError(f"{muc.NAME} is not the bot's MUC plugin")
        plugin.attach(self)
        return plugin

    # --- typed access to the plugins used --------------------------------------------------

    async def ping(self, jid: str, within_s: float) -> None:
        """XEP-0199 ping; raises IqError (answered with an error) or IqTimeout."""
        await self.plugin["xep_0199"].send_ping(JID(jid), timeout=within_s)

    async def disco_info(self, jid: str, within_s: float) -> frozenset[str]:
        """XEP-0030 disco#info: the features; raises IqError or IqTimeout. The extended
        information (XEP-0128) of a room is handed to the bot (its configuration)."""
        iq = await self.plugin["xep_0030"].get_info(jid=JID(jid), timeout=within_s)
        if self.bot is not None and self.is_room_jid(JID(jid).bare.lower()):
            self.bot.on_room_config(JID(jid).bare.lower(), stanzas.subject_open(iq.xml))
        return frozenset(str(feature) for feature in iq["disco_info"]["features"])

    @property
    def disco(self) -> Any:
        return self.plugin["xep_0030"]

    @property
    def forms(self) -> Any:
        return self.plugin["xep_0004"]

    @property
    def resumable_id(self) -> str | None:
        """Stream management's id for this stream: set while it can be resumed."""
        sm_id: str | None = self.plugin["xep_0198"].sm_id
        return sm_id

    # --- connection ------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._reconnect = None
        self.connect(self.settings.server_host, self.settings.server_port)

    async def stop(self) -> None:
        self._stopping = True
        if self._reconnect is not None:
            self._reconnect.cancel()
        self.cancel_connection_attempt()
        await self.liveness.close()
        for task in list(self._tasks):
            task.cancel()
        if self.transport is not None:
            await self.disconnect(wait=2.0)

    def reschedule_connection_attempt(self) -> Any:
        """Every way of connecting failed. slixmpp would try again after a wait it doubles
        up to 300 s; the edge tries on its own back-off (at most BACKOFF_MOST_S), so the bot
        is back within a minute of the server."""
        self.cancel_connection_attempt()
        if not self._stopping:
            self._retry_later("the connection failed")
        return None

    def data_received(self, data: Any) -> None:
        """What the server wrote, read; then its TCP acknowledgement sent at once.

        The server writes the bot things the bot does not answer: the reflection of each of
        its room messages (an announcement after `attach`), stream management's answers to
        the bot's ack requests. The kernel holds the ACK of such a write for up to 40 ms,
        and with Nagle's algorithm on the server's socket (Prosody's default) the server's
        next stanza for the bot, the next command, waits for that ACK: `attach` took 44 ms
        instead of ~1. TCP_QUICKACK (a socket option, set after each read) sends the held
        ACK now; where it does not exist the bot works as before, only slower there."""
        super().data_received(data)
        if QUICKACK is None or self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):  # closing, or not TCP: nothing to acknowledge
                sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)

    def drop_connection(self) -> None:
        """Drop the TCP connection without closing the stream, so it can be resumed."""
        self.abort()

    def _session_bind(self, _jid: Any) -> None:
        category, kind, name = IDENTITY
        self.disco.add_identity(category=category, itype=kind, name=name)
        self.adhoc.session_bind()

    def _session_start(self, _event: Any) -> None:
        self._backoff = BACKOFF_FIRST_S
        self._in_session, self._suspended = True, False
        self._held.clear()
        self.send_presence(ppriority=self._priority())
        self.online.set()
        self.liveness.start()
        log.info("connected as %s", self.boundjid)
        if self.bot is not None:
            self.bot.on_online()
            self.bot.on_link(True)

    def set_desk(self, desk: bool) -> None:
        """Answer what is sent to the bot's bare JID, or leave it to another process: the
        priority tells the server where to deliver it, and `for_me` drops what still comes."""
        if desk == self.desk:
            return
        self.desk = desk
        if self._in_session and not self._suspended:
            self.send_presence(ppriority=self._priority())

    def _priority(self) -> int | None:
        if not self.shared:
            return None  # one process: no priority (0)
        return DESK_PRIORITY if self.desk else BACK_PRIORITY

    def for_me(self, to: str | None) -> bool:
        """A message addressed to this process's full JID, or to the bare JID while it holds
        the desk: answered here (a message to another resource never reaches it)."""
        return self.desk or "/" in (to or "")  # a bare JID has no "/"

    def _session_resumed(self, _event: Any) -> None:
        """The server kept the session: the bot is still in its rooms, nothing to redo."""
        self._backoff = BACKOFF_FIRST_S
        self._suspended = False
        held, self._held = list(self._held), collections.deque(maxlen=MOST_HELD)
        for stanza in held:
            stanza.send()
        self.online.set()
        self.liveness.start()
        log.info("stream resumed as %s (%d stanza(s) held sent)", self.boundjid, len(held))
        if self.bot is not None:
            self.bot.on_link(True)

    def _session_end(self, _event: Any) -> None:
        """The server forgot the session (or would not resume it): so did every room."""
        self._session_over()

    def _session_over(self) -> None:
        self._suspended = False
        self._held.clear()
        if self._in_session:
            self._in_session = False
            if self.bot is not None:
                self.bot.on_offline()

    def _resumable(self) -> bool:
        return self._in_session and bool(self.resumable_id) and not self.end_session_on_disconnect

    def _disconnected(self, reason: Any) -> None:
        self.online.clear()
        self.liveness.stop()
        if self._stopping or not self._resumable():
            self._session_over()  # (done already where slixmpp saw the session end)
        else:
            self._suspended = True  # hold what the bot sends until the stream is resumed
        if self.bot is not None:  # (after the above: leaves it sends now are held or dropped)
            self.bot.on_link(False)
        if not self._stopping:
            self._retry_later(str(reason))

    def _retry_later(self, reason: str) -> None:
        if self._reconnect is not None:
            return  # one loss reported twice (slixmpp does after a refused certificate)
        delay = self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MOST_S)
        log.warning("disconnected (%s); reconnecting in %.0f s", reason, delay)
        METRICS.reconnect()
        self._reconnect = self.loop.call_later(delay, self.start)

    def _forget_sent_presence(self, stanza: Any) -> Any:
        """Out-filter, after the roster's own: the copy it keeps of a presence sent to a room
        (its last status there) is dropped with the room's local roster entry."""
        if stanza.xml.tag == stanzas.PRESENCE_TAG and stanza["to"].domain in self.services:
            del self.client_roster[stanza["to"].bare]  # local: the server's roster untouched
        return stanza

    @staticmethod
    def _xml_safe(stanza: Any) -> Any:
        stanzas.make_xml_safe(stanza.xml)
        return stanza

    def _sibling_presence(self, presence: Any) -> None:
        """Another session of the bot's own account came or went. Only the account's own
        sessions can send from its bare JID (the server stamps it): when one ends, the server
        has taken it out of every room, and its rooms can be served again at once."""
        sender = presence["from"]
        if (
            self.shared and self.bot is not None and sender.bare == self.boundjid.bare
            and sender.resource and sender.full != self.boundjid.full
            and not stanzas.has_any(presence.xml, *stanzas.DELAYS)
        ):
            self.bot.on_sibling(sender.resource, presence["type"] != "unavailable")

    def _failed_auth(self, _event: Any) -> None:
        log.error("the server refused the bot's credentials for %s", self.settings.jid)

    def is_room_jid(self, bare: str) -> bool:
        """A room (of a served service, or one the bot is in), not a user."""
        if self.bot is not None and self.bot.own_nick(bare) is not None:
            return True
        return JID(bare).domain in self.services

    # --- outbound (the bot's Transport) ----------------------------------------------------

    def send_stanza(self, stanza: Any) -> None:
        """Send through slixmpp's queue, or hold it while a resumable stream is away (sent
        on resumption)."""
        if self._suspended:
            self._held.append(stanza)
        else:
            stanza.send()

    def send_direct(self, to: str, text: str) -> None:
        self.send_stanza(self.make_message(mto=to, mbody=text, mtype="chat"))

    def send_private(self, room: str, nick: str, text: str, link: Link | None = None) -> None:
        stanza = self.make_message(mto=stanzas.room_jid(room, nick), mbody=text, mtype="chat")
        stanza.xml.append(stanzas.muc_user_element())
        add_link(stanza.xml, link)
        self.send_stanza(stanza)

    def send_room(self, room: str, text: str, link: Link | None = None) -> None:
        stanza = self.make_message(mto=stanzas.room_jid(room), mbody=text, mtype="groupchat")
        add_link(stanza.xml, link)
        self.send_stanza(stanza)

    def process_jid(self, process: str) -> JID:
        """Several processes: the full JID of process `process` (its own resource)."""
        return JID(f"{self.boundjid.bare}/{self.settings.resource}-{process}")

    def relay(self, process: str, jid: str, text: str, lang: str | None) -> None:
        stanza = self.make_message(mto=self.process_jid(process), mtype="headline")
        stanza.xml.append(stanzas.relay_element(jid, text, lang))
        self.send_stanza(stanza)

    async def ask_managed(self, process: str, jid: str) -> dict[str, bool]:
        return await self.adhoc.ask_managed(process, jid)

    def set_subject(self, room: str, subject: str) -> None:
        stanza = self.make_message(mto=stanzas.room_jid(room), mtype="groupchat")
        stanza.xml.append(stanzas.subject_element(subject))
        self.send_stanza(stanza)

    def join(self, room: str, nick: str) -> None:
        self.send_stanza(self.muc.join_stanza(room, nick))

    def leave(self, room: str, nick: str) -> None:
        self.send_stanza(self.muc.leave_stanza(room, nick))

    async def destroy(self, room: str) -> bool:
        """Destroy `room`, which the bot's own join has just created (so the bot owns it):
        made temporary first (a persistent room destroyed on Prosody leaves a tombstone
        that refuses the name for a month), then destroyed. True once the room is gone."""
        try:
            await self._owner_set(room, stanzas.not_persistent_element())
        except (IqError, IqTimeout) as exc:
            log.warning("%s (created by the bot's join) was not made temporary: %s", room, exc)
        try:
            await self._owner_set(room, stanzas.destroy_element(
                "addinbot joins only rooms that exist"))
        except (IqError, IqTimeout) as exc:
            log.warning("%s (created by the bot's join) was not destroyed: %s", room, exc)
            return False
        return True

    async def _owner_set(self, room: str, query: Any) -> None:
        """An owner's request (XEP-0045 §10) to `room`; raises IqError or IqTimeout."""
        iq: Any = self.make_iq_set(ito=stanzas.room_jid(room))
        iq.xml.append(query)
        await iq.send(timeout=invites.EXISTS_TIMEOUT_S)

    async def room_exists(self, room: str) -> bool | None:
        """Ask the room (disco#info) whether it exists; what it advertises is kept for
        reading its occupants' presences (bot.xmpp.muc: occupant ids). ValueError, and
        nothing sent, for an address slixmpp would read as another room."""
        stanzas.room_jid(room)
        exists, features = await invites.room_exists(self, room)
        self.muc.room_features(room, features)
        return exists

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task the edge keeps (and cancels when it stops)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())
