"""A minimal XMPP client on asyncio for the benchmark's measurer and crowd.

Plaintext SASL PLAIN on loopback, resource binding, then whole stanzas (ElementTree elements,
parsed by expat) handed to ``on_stanza`` with the time they arrived. It keeps no roster and
does nothing with presence it is not asked to, so hundreds of them in one process stay cheap
and a round trip measured with it is the server's and the peer's, not the client's.
"""

from __future__ import annotations

import asyncio
import base64
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from xml.sax.saxutils import escape, quoteattr

NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_OOB = "jabber:x:oob"

MESSAGE = f"{{{NS_CLIENT}}}message"
PRESENCE = f"{{{NS_CLIENT}}}presence"
BODY = f"{{{NS_CLIENT}}}body"
MUC_X = f"{{{NS_MUC_USER}}}x"
MUC_STATUS = f"{{{NS_MUC_USER}}}status"
OOB_URL = f"{{{NS_OOB}}}x/{{{NS_OOB}}}url"

Stanza = ET.Element
Predicate = Callable[[Stanza], bool]


class XmppError(ConnectionError):
    """The server refused or dropped the session."""


class RawClient(asyncio.Protocol):
    """One XMPP session. ``await connect()``, then ``send()`` raw XML and either set
    ``on_stanza(stanza, arrived)`` or ``await expect(predicate)``."""

    def __init__(self, user: str, domain: str, password: str, resource: str = "bench") -> None:
        self.user = user
        self.domain = domain
        self.password = password
        self.resource = resource
        self.jid = f"{user}@{domain}"
        self.full_jid = f"{self.jid}/{resource}"
        self.on_stanza: Callable[[Stanza, float], None] | None = None
        self._transport: asyncio.Transport | None = None
        self._parser: ET.XMLPullParser | None = None
        self._root: Stanza | None = None
        self._depth = 0
        self._handshake: asyncio.Queue[Stanza] = asyncio.Queue()
        self._expect: list[tuple[Predicate, asyncio.Future[tuple[Stanza, float]]]] = []
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ids = 0
        self.ready = False  # bound: stanzas nobody waits for are dropped, not queued

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        arrived = time.monotonic()
        parser = self._parser
        if parser is None:
            return
        parser.feed(data)
        for event, elem in parser.read_events():
            if event == "start":
                self._depth += 1
                if self._depth == 1:
                    self._root = elem
                continue
            self._depth -= 1
            if self._depth == 1 and self._root is not None:
                self._root.remove(elem)
                self._deliver(elem, arrived)
                if self._parser is not parser:
                    return  # the stream restarted inside this chunk (never, in practice)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self._lost.done():
            self._lost.set_result(None)
        for _, future in self._expect:
            if not future.done():
                future.set_exception(XmppError(f"{self.jid}: connection lost"))
        self._expect.clear()

    def _deliver(self, stanza: Stanza, arrived: float) -> None:
        if stanza.tag == f"{{{NS_STREAM}}}error":
            raise XmppError(f"{self.jid}: stream error {ET.tostring(stanza)[:200]!r}")
        if self._expect:
            self._expect = [(p, f) for p, f in self._expect if not f.done()]  # cancelled waits
            for index, (predicate, future) in enumerate(self._expect):
                if predicate(stanza):
                    del self._expect[index]
                    future.set_result((stanza, arrived))
                    return
        if self.on_stanza is not None:
            self.on_stanza(stanza, arrived)
        elif not self.ready:
            self._handshake.put_nowait(stanza)

    # --- session ---------------------------------------------------------------------------

    async def connect(self, host: str, port: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            loop = asyncio.get_running_loop()
            await loop.create_connection(lambda: self, host, port)
            self._open_stream()
            await self._next()  # features: SASL mechanisms
            token = base64.b64encode(
                f"\0{self.user}\0{self.password}".encode()
            ).decode()
            self.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
            answer = await self._next()
            if answer.tag != f"{{{NS_SASL}}}success":
                raise XmppError(f"{self.jid}: authentication failed")
            self._open_stream()
            await self._next()  # features: bind
            self.send(
                f"<iq type='set' id='bind'><bind xmlns='{NS_BIND}'>"
                f"<resource>{escape(self.resource)}</resource></bind></iq>"
            )
            bound = await self._next()
            if bound.get("type") != "result":
                raise XmppError(f"{self.jid}: resource binding failed")
            jid = bound.findtext(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid")
            self.full_jid = jid or self.full_jid
            self.ready = True

    def _open_stream(self) -> None:
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._root = None
        self._depth = 0
        self.send(
            f"<?xml version='1.0'?><stream:stream to='{self.domain}' xmlns='{NS_CLIENT}' "
            f"xmlns:stream='{NS_STREAM}' version='1.0'>"
        )

    async def _next(self) -> Stanza:
        getter = asyncio.ensure_future(self._handshake.get())
        await asyncio.wait([getter, self._lost], return_when=asyncio.FIRST_COMPLETED)
        if not getter.done():
            getter.cancel()
            raise XmppError(f"{self.jid}: the server closed the connection")
        return getter.result()

    async def close(self, timeout: float = 2.0) -> None:
        if self._transport is None:
            return
        self.send("</stream:stream>")
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._lost)
        except TimeoutError:
            if self._transport is not None:
                self._transport.abort()

    @property
    def connected(self) -> bool:
        return self._transport is not None

    # --- stanzas ---------------------------------------------------------------------------

    def send(self, xml: str) -> None:
        if self._transport is not None:
            self._transport.write(xml.encode())

    def new_id(self) -> str:
        self._ids += 1
        return f"b{self._ids}"

    def expect(self, predicate: Predicate) -> asyncio.Future[tuple[Stanza, float]]:
        """A future for the next stanza matching ``predicate``: (stanza, monotonic arrival)."""
        future: asyncio.Future[tuple[Stanza, float]] = (
            asyncio.get_running_loop().create_future()
        )
        self._expect.append((predicate, future))
        return future

    def message(self, to: str, body: str, kind: str = "chat") -> float:
        """Send a message; returns the monotonic time just before it was written."""
        xml = (
            f"<message to={quoteattr(to)} type='{kind}' id='{self.new_id()}'>"
            f"<body>{escape(body)}</body></message>"
        )
        sent = time.monotonic()
        self.send(xml)
        return sent

    def presence(self) -> None:
        self.send("<presence/>")

    def join(self, room: str, nick: str) -> float:
        """Join a room without history; returns the monotonic time of the send."""
        xml = (
            f"<presence to={quoteattr(f'{room}/{nick}')}><x xmlns='{NS_MUC}'>"
            f"<history maxstanzas='0'/></x></presence>"
        )
        sent = time.monotonic()
        self.send(xml)
        return sent

    def leave(self, room: str, nick: str) -> None:
        self.send(f"<presence type='unavailable' to={quoteattr(f'{room}/{nick}')}/>")


# --- stanza predicates ---------------------------------------------------------------------


def is_self_presence(stanza: Stanza, occupant: str) -> bool:
    """Our own presence in a room (status 110), available or unavailable."""
    if stanza.tag != PRESENCE or stanza.get("from") != occupant:
        return False
    x = stanza.find(MUC_X)
    return x is not None and any(s.get("code") == "110" for s in x.iter(MUC_STATUS))


def body_from(stanza: Stanza, sender: str, *, bare: bool, kind: str) -> bool:
    """A message of ``kind`` with a body from ``sender`` (compared as a bare JID if ``bare``)."""
    if stanza.tag != MESSAGE or stanza.get("type", "normal") != kind:
        return False
    frm = stanza.get("from", "")
    if bare:
        frm = frm.partition("/")[0]
    return frm == sender and bool(stanza.findtext(BODY))
