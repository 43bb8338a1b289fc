"""The XMPP edge: the only code that speaks slixmpp.

It connects, authenticates, reconnects with back-off, joins rooms without history, turns
every inbound stanza into a plain value (bot.inbound.Message, bot.rooms.Presence), drops
what must never be acted on, and turns plain replies back into stanzas.

Beside it: bot.xmpp.liveness (pings to the server and self-pings to rooms), stream
management (XEP-0198: a dropped connection is resumed, with its rooms, where the server
allows it), bot.xmpp.invites (invitations), bot.xmpp.adhoc and bot.xmpp.panel (the ad-hoc
commands), and the bot's identity (disco: client/bot "addinbot"; XEP-0092 version).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import xml.etree.ElementTree as ET
from collections.abc import Coroutine
from typing import Any, Protocol

import slixmpp
from slixmpp import JID
from slixmpp.xmlstream import tostring
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.handler.base import BaseHandler
from slixmpp.xmlstream.matcher import MatchXPath

from bot import __version__
from bot.config import XmppSettings
from bot.invitations import Decline, Invitation
from bot.metrics import METRICS
from bot.values import Kind, Link, Message, Presence
from bot.xmpp import escape, invites, matching
from bot.xmpp.adhoc import AdhocCommands
from bot.xmpp.liveness import Liveness
from bot.xmpp.panel import Backend

log = logging.getLogger(__name__)

NS_CLIENT = "jabber:client"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_DELAY = "urn:xmpp:delay"
NS_LEGACY_DELAY = "jabber:x:delay"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"
NS_OOB = "jabber:x:oob"
PRESENCE_TAG = f"{{{NS_CLIENT}}}presence"
MUC_USER_X = f"{{{NS_MUC_USER}}}x"
CAPS_PRESENCE_TYPES = frozenset({"available", "chat", "away", "dnd", "xa"})
OCCUPANT_PRESENCE_TYPES = frozenset({None, "unavailable"})  # what a room says of an occupant
OUT_FILTER_MODES = ("out", "out_sync", "out_sce")  # in the order slixmpp runs them

BACKOFF_FIRST_S = 1.0
BACKOFF_MOST_S = 60.0
MOST_HELD = 1000  # stanzas kept while a resumable stream is away; the oldest go first
IDENTITY = ("client", "bot", "addinbot")  # XEP-0030 category, type, name


class Bot(Backend, Protocol):
    """What the edge calls on the bot; all on the loop thread."""

    def own_nick(self, room: str) -> str | None: ...

    def on_message(self, message: Message) -> None: ...

    def on_presence(self, presence: Presence) -> None: ...

    def on_join_error(self, room: str, condition: str) -> None: ...

    def on_online(self) -> None: ...

    def on_offline(self) -> None: ...

    def live_rooms(self) -> list[tuple[str, str]]:
        """(room, own nickname) of every room the bot is in, for self-pings."""

    def on_room_dropped(self, room: str, nick: str) -> None:
        """A self-ping says the room no longer has the bot as `nick`."""

    def on_invitation(self, invitation: Invitation, decline: Decline) -> None: ...

    def on_room_status(self, room: str, codes: frozenset[int]) -> None:
        """The room itself announced a change of its configuration (status codes)."""


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


class XmppEdge(slixmpp.ClientXMPP):
    def __init__(self, settings: XmppSettings, password: str, services: list[str]) -> None:
        super().__init__(settings.jid, password)
        escape.install()  # the same stanzas, serialised faster
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
        for plugin in (
            "xep_0004", "xep_0030", "xep_0045", "xep_0066", "xep_0199", "xep_0203", "xep_0198",
        ):
            self.register_plugin(plugin)
        self.register_plugin("xep_0092", {"name": IDENTITY[2], "version": __version__})
        self.liveness = Liveness(self)
        self.adhoc = AdhocCommands(self)
        configure_transport(self, settings)
        self.add_event_handler("session_bind", self._session_bind)
        self.add_event_handler("session_start", self._session_start)
        self.add_event_handler("session_resumed", self._session_resumed)
        self.add_event_handler("session_end", self._session_end)
        self.add_event_handler("disconnected", self._disconnected)
        self.add_event_handler("message", self._message)
        # Not the "message" event: that is only raised for a message with a body.
        self.register_handler(Callback(
            "addinbot invitations", MatchXPath(f"{{{NS_CLIENT}}}message"), self._invitation
        ))
        # Room presences, most of what a busy bot receives, go to the bot from here and no
        # further: slixmpp's handlers would keep a roster of every occupant, ask occupants'
        # clients for their capabilities, and raise events no one here listens to, at four
        # times the cost of the bot's own work on a presence. (After stream management's
        # filter, which counts every stanza received.)
        self.add_filter("in", self._room_presence)
        # slixmpp's capabilities filter (XEP-0115) is a coroutine, so every stanza sent, each
        # answer included, waited for a task of its own and two turns of the loop (~35 µs)
        # to have nothing done to it: only presences carry capabilities. The same, at once.
        caps: Any = self.plugin["xep_0115"]
        self.del_filter("out", caps._filter_add_caps)
        self.add_filter("out", self._add_caps)
        self.add_event_handler("groupchat_config_status", self._room_status)
        self.add_event_handler("presence_error", self._presence_error)
        self.add_event_handler("failed_auth", self._failed_auth)


    def register_handler(self, handler: BaseHandler, before: BaseHandler | None = None,
                         after: BaseHandler | None = None) -> None:
        """Every handler, slixmpp's and its plugins' too, matched through a gate (matching.py):
        the same handlers run for each stanza, found in a fraction of the time."""
        handler._matcher = matching.gated(handler._matcher)
        super().register_handler(handler, before, after)

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
        """slixmpp doubles its wait between failed attempts up to 300 s; keep ours to
        BACKOFF_MOST_S, so the bot is back within a minute of the server."""
        attempt = super().reschedule_connection_attempt()
        self._connect_loop_wait = min(self._connect_loop_wait, BACKOFF_MOST_S)
        return attempt

    def drop_connection(self) -> None:
        """Drop the TCP connection without closing the stream, so it can be resumed."""
        self.abort()

    def _session_bind(self, _jid: Any) -> None:
        category, kind, name = IDENTITY
        self.plugin["xep_0030"].add_identity(category=category, itype=kind, name=name)
        self.adhoc.session_bind()

    def _session_start(self, _event: Any) -> None:
        self._backoff = BACKOFF_FIRST_S
        self._in_session, self._suspended = True, False
        self._held.clear()
        self.send_presence()
        self.online.set()
        self.liveness.start()
        log.info("connected as %s", self.boundjid)
        if self.bot is not None:
            self.bot.on_online()

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
        sm = self.plugin["xep_0198"]
        return self._in_session and bool(sm.sm_id) and not self.end_session_on_disconnect

    def _disconnected(self, reason: Any) -> None:
        self.online.clear()
        self.liveness.stop()
        if self._stopping or not self._resumable():
            self._session_over()  # (done already where slixmpp saw the session end)
        else:
            self._suspended = True  # hold what the bot sends until the stream is resumed
        if self._stopping:
            return
        if self._reconnect is not None:
            return  # one loss reported twice (slixmpp does after a refused certificate)
        delay = self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MOST_S)
        log.warning("disconnected (%s); reconnecting in %.0f s", reason, delay)
        METRICS.reconnect()
        self._reconnect = self.loop.call_later(delay, self.start)

    def _failed_auth(self, _event: Any) -> None:
        log.error("the server refused the bot's credentials for %s", self.settings.jid)

    # --- inbound ---------------------------------------------------------------------------

    def _message(self, stanza: Any) -> None:
        if self.bot is None:
            return
        if invites.is_invitation(stanza.xml):
            return  # handled by _invitation, body or not: never a command
        message = self.to_message(stanza.xml)
        if message is not None:
            self.bot.on_message(message)

    def to_message(self, xml: ET.Element) -> Message | None:
        """The plain value for a message stanza, or None when it must not be acted on."""
        kind_attr = xml.get("type", "normal")
        if kind_attr in ("error", "headline"):
            return None
        if _has_any(xml, f"{{{NS_DELAY}}}delay", f"{{{NS_LEGACY_DELAY}}}x"):
            return None  # history, offline storage or a relay: never live, never acted on
        if _has_any(xml, f"{{{NS_CARBONS}}}received", f"{{{NS_CARBONS}}}sent",
                    f"{{{NS_FORWARD}}}forwarded"):
            return None  # the bot asks for no carbons; anything wrapped is not a command
        body = xml.findtext(f"{{{NS_CLIENT}}}body")
        if not body:
            return None
        try:
            sender = JID(xml.get("from", ""))
        except Exception:
            return None
        bare = sender.bare.lower()
        if not sender.user or bare == self.boundjid.bare.lower():
            return None  # the server itself, or our own account
        room, nick = bare, sender.resource
        if kind_attr == "groupchat":
            own = self.bot.own_nick(room) if self.bot else None
            if own is None or not nick or nick == own:
                return None  # a room we are not in, the room itself, or our own reflection
            return Message(Kind.ROOM, body, room=room, nick=nick)
        if self._is_room(room, xml):
            if not nick:
                return None
            return Message(Kind.ROOM_PRIVATE, body, room=room, nick=nick)
        return Message(Kind.DIRECT, body, jid=bare)

    def _is_room(self, bare: str, xml: ET.Element) -> bool:
        """A message from a room occupant, not from a user: it proves only a nickname."""
        if xml.find(f"{{{NS_MUC_USER}}}x") is not None:
            return True
        return self.is_room_jid(bare)

    def is_room_jid(self, bare: str) -> bool:
        """A room (of a served service, or one the bot is in), not a user."""
        if self.bot is not None and self.bot.own_nick(bare) is not None:
            return True
        return JID(bare).domain in self.services

    def _invitation(self, stanza: Any) -> None:
        if self.bot is None or not invites.is_invitation(stanza.xml):
            return
        received = invites.parse(stanza.xml, services=self.services, is_room=self._is_room)
        if received is None or self.bot is None:
            return
        decline = invites.decline(self, received)
        invitation = received.invitation
        service = invitation.room.partition("@")[2].lower()
        if invitation.mediated or service not in self.services:
            self.bot.on_invitation(invitation, decline)
            return
        self._spawn(self._checked_invitation(invitation, decline))

    async def _checked_invitation(self, invitation: Invitation, decline: Decline) -> None:
        """A direct invitation names any room: ask the room whether it exists at all, so
        that looking at it never creates it."""
        exists = await invites.room_exists(self, invitation.room)
        if self.bot is not None:
            self.bot.on_invitation(dataclasses.replace(invitation, room_exists=exists), decline)

    def _room_status(self, stanza: Any) -> None:
        """A body-less message from the room itself carrying status codes (e.g. 172: the
        room now shows real JIDs)."""
        xml = stanza.xml
        if self.bot is None or xml.get("type") == "error":
            return
        if _has_any(xml, f"{{{NS_DELAY}}}delay", f"{{{NS_LEGACY_DELAY}}}x"):
            return
        sender = JID(xml.get("from", ""))
        room = sender.bare.lower()
        if sender.resource or self.bot.own_nick(room) is None:
            return  # only the room itself, and only a room we are in
        muc = xml.find(f"{{{NS_MUC_USER}}}x")
        codes = frozenset(
            int(code)
            for status in (muc.findall(f"{{{NS_MUC_USER}}}status") if muc is not None else [])
            if (code := status.get("code", "")).isascii() and code.isdigit()
        )
        self.bot.on_room_status(room, codes)

    def _room_presence(self, stanza: Any) -> Any:
        """In-filter: an occupant's presence in a room (available or unavailable, with MUC
        user data) is taken here, and goes no further. Errors, subscriptions and everything
        else go on to slixmpp's handlers."""
        xml = stanza.xml
        if (
            xml.tag != PRESENCE_TAG or xml.get("type") not in OCCUPANT_PRESENCE_TYPES
            or xml.find(MUC_USER_X) is None
        ):
            return stanza
        try:
            presence = self.to_presence(xml)
        except Exception:  # raised here, it would end the stream: slixmpp's handlers catch
            log.exception("unreadable presence from %r", xml.get("from"))
            return stanza
        if presence is None:
            return stanza  # no occupant named: nothing for the bot
        self.liveness.heard(presence.room)
        if self.bot is not None:
            try:
                self.bot.on_presence(presence)
            except Exception:  # logged, as slixmpp logs a failing event handler's
                log.exception("handling a presence from %s failed", presence.room)
        return None

    @staticmethod
    def to_presence(xml: ET.Element) -> Presence | None:
        sender = JID(xml.get("from", ""))
        muc = xml.find(f"{{{NS_MUC_USER}}}x")
        if muc is None or not sender.resource:
            return None
        item = muc.find(f"{{{NS_MUC_USER}}}item")
        attrs = item.attrib if item is not None else {}
        real = attrs.get("jid")
        codes = frozenset(
            int(code)
            for status in muc.findall(f"{{{NS_MUC_USER}}}status")
            if (code := status.get("code", "")).isascii() and code.isdigit()
        )
        occupant_id = xml.find(f"{{{NS_OCCUPANT_ID}}}occupant-id")
        return Presence(
            room=sender.bare.lower(),
            nick=sender.resource,
            available=xml.get("type", "available") != "unavailable",
            affiliation=attrs.get("affiliation", "none"),
            role=attrs.get("role", "none"),
            jid=JID(real).bare.lower() if real else None,
            occupant_id=occupant_id.get("id") if occupant_id is not None else None,
            codes=codes,
            new_nick=attrs.get("nick"),
            destroyed=muc.find(f"{{{NS_MUC_USER}}}destroy") is not None,
        )

    def _presence_error(self, stanza: Any) -> None:
        room = stanza["from"].bare.lower()
        if self.bot is not None and self.bot.own_nick(room) is not None:
            self.bot.on_join_error(room, stanza["error"]["condition"] or "unknown")

    # --- outbound (the bot's Transport) ----------------------------------------------------

    def _add_caps(self, stanza: Any) -> Any:
        """Out-filter: what slixmpp's XEP-0115 filter does, without awaiting: our own
        verification string comes from its store, which answers at once."""
        caps = self.plugin["xep_0115"]
        if not isinstance(stanza, slixmpp.Presence) or not caps.broadcast:
            return stanza
        if stanza["type"] not in CAPS_PRESENCE_TYPES:
            return stanza
        found = caps.get_verstring(stanza["from"])
        ver = found.result() if found.done() else None
        if ver:
            stanza["caps"]["node"] = caps.caps_node
            stanza["caps"]["hash"] = caps.hash
            stanza["caps"]["ver"] = ver
        return stanza

    def send_stanza(self, stanza: Any) -> None:
        """Send now, or hold it while a resumable stream is away (sent on resumption)."""
        if self._suspended:
            self._held.append(stanza)
        elif not self._write_now(stanza):
            stanza.send()

    def _write_now(self, stanza: Any) -> bool:
        """Write ``stanza`` at once, as slixmpp's send queue would: through every outgoing
        filter in its order (stream management counts it there), serialised the same way.
        slixmpp's queue writes it a turn or two of the loop later, after whatever else is
        ready to run: ~0.1 ms before an answer leaves. Only when nothing is queued before
        it (order is kept), the session is up and no filter is a coroutine (it would have
        to be waited for); else False, and the queue sends it."""
        if not self._session_started or self.transport is None or not self.waiting_queue.empty():
            return False
        filters: dict[str, list[Any]] = vars(self)["_XMLStream__filters"]  # slixmpp's own
        chain = [f for mode in OUT_FILTER_MODES for f in filters[mode]]
        if any(asyncio.iscoroutinefunction(f) for f in chain):
            return False
        try:
            data = stanza
            for out_filter in chain:
                data = out_filter(data)
                if data is None:
                    return True  # a filter dropped it, as in the queue
            self.send_raw(tostring(data.xml, xmlns=self.default_ns, stream=self, top_level=True))
        except Exception:
            log.exception("sending a stanza failed")  # as slixmpp's queue does
        return True

    def send_direct(self, to: str, text: str) -> None:
        self.send_stanza(self.make_message(mto=to, mbody=text, mtype="chat"))

    def send_private(self, room: str, nick: str, text: str, link: Link | None = None) -> None:
        stanza = self.make_message(mto=JID(f"{room}/{nick}"), mbody=text, mtype="chat")
        stanza.append(ET.Element(f"{{{NS_MUC_USER}}}x"))
        _add_link(stanza, link)
        self.send_stanza(stanza)

    def send_room(self, room: str, text: str, link: Link | None = None) -> None:
        stanza = self.make_message(mto=room, mbody=text, mtype="groupchat")
        _add_link(stanza, link)
        self.send_stanza(stanza)

    def join(self, room: str, nick: str) -> None:
        muc = self.plugin["xep_0045"]
        stanza = muc.make_join_stanza(JID(room), nick, maxstanzas=0)
        self.send_stanza(stanza)

    def leave(self, room: str, nick: str) -> None:
        self.send_stanza(self.make_presence(pto=JID(f"{room}/{nick}"), ptype="unavailable"))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())


def _has_any(xml: ET.Element, *tags: str) -> bool:
    return any(xml.find(tag) is not None for tag in tags)


def _add_link(stanza: Any, link: Link | None) -> None:
    if link is None:
        return
    oob = ET.Element(f"{{{NS_OOB}}}x")
    ET.SubElement(oob, f"{{{NS_OOB}}}url").text = link.url
    ET.SubElement(oob, f"{{{NS_OOB}}}desc").text = link.name
    stanza.append(oob)
