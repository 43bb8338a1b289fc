"""A slixmpp client for tests: plaintext on loopback, every received message in an inbox.

Create and use it on the running event loop (the test's)::

    client = TestClient("alice@localhost", "pw")
    await client.start(server.host, server.port)
    reply = await client.ask("addinbot@localhost", "help")
    await client.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import slixmpp
from slixmpp import JID, Message
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

CONNECT_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

MessagePredicate = Callable[[Message], bool]


def sent_by(sender: str, kind: str | None = None, body: str | None = None) -> MessagePredicate:
    """A message from ``sender`` with a body: a full JID (``room@muc/nick``) must match
    exactly, a bare one matches any resource of it. With ``kind``, of that type only; with
    ``body``, saying exactly that.

    Waiting for the message a test means, rather than for "the next one", keeps it from
    racing whatever else may be on its way (a welcome, an announcement)."""
    peer = JID(sender)

    def match(msg: Message) -> bool:
        origin = msg["from"]
        if origin.bare != peer.bare or (peer.resource and origin.resource != peer.resource):
            return False
        if kind is not None and msg["type"] != kind:
            return False
        return bool(msg["body"]) and (body is None or msg["body"] == body)

    return match


def describe(msg: Message) -> str:
    """One line per message, for assertion texts."""
    text = msg["body"] or (f"subject={msg['subject']!r}" if msg["subject"] else "")
    return f"<{msg['type']} from={msg['from']} {text!r}>"


class TestClient(slixmpp.ClientXMPP):
    """A real XMPP client for tests, on the current asyncio loop."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, jid: str, password: str) -> None:
        super().__init__(jid, password)
        # Plaintext c2s on loopback (tests/harness/prosody.py has no TLS at all).
        self.enable_direct_tls = False
        self.enable_starttls = False
        self.enable_plaintext = True
        for plugin in ("xep_0030", "xep_0045", "xep_0066", "xep_0199", "xep_0203"):
            self.register_plugin(plugin)
        self.plugin["feature_mechanisms"].unencrypted_plain = True
        # No whitespace pings: a test client lives seconds, and a stray timer helps no one.
        self.whitespace_keepalive = False

        #: Every message stanza received, in order (chat, groupchat, normal, headline, error).
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        # Messages taken off the inbox by a predicate they did not match, still unread.
        self._unread: list[Message] = []
        self.register_handler(Callback("TestClient inbox", StanzaPath("message"), self._collect))

    def _collect(self, stanza: StanzaBase) -> None:
        if isinstance(stanza, Message):
            self.inbox.put_nowait(stanza)

    # -- connection -------------------------------------------------------------------------

    async def start(self, host: str, port: int, timeout: float = CONNECT_TIMEOUT) -> None:
        """Connect, authenticate, send initial presence; return once the server has it."""
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[str] = loop.create_future()

        def settle(result: str) -> Callable[[Any], None]:
            def handler(_event: Any) -> None:
                if not outcome.done():
                    outcome.set_result(result)

            return handler

        handlers = {
            "session_start": settle(""),
            "failed_all_auth": settle("authentication failed"),
            "connection_failed": settle(f"cannot connect to {host}:{port}"),
            "stream_error": settle("stream error"),
        }
        for event, handler in handlers.items():
            self.add_event_handler(event, handler)
        try:
            self.connect(host, port)
            try:
                async with asyncio.timeout(timeout):
                    problem = await outcome
            except TimeoutError:
                problem = f"no session within {timeout:.0f} s"
            if problem:
                await self._abandon()
                raise ConnectionError(f"{self.boundjid.bare} at {host}:{port}: {problem}")
            self.send_presence()
            # Stanzas of one session are handled in order: once the server answers this
            # ping, it has our presence, and messages to our bare JID reach us.
            await self.plugin["xep_0199"].ping(JID(self.boundjid.domain), timeout=timeout)
        finally:
            for event, handler in handlers.items():
                self.del_event_handler(event, handler)

    async def stop(self) -> None:
        """Close the stream and wait (bounded) until the connection is gone."""
        if self.transport is not None:
            try:
                await asyncio.wait_for(self.disconnect(wait=STOP_TIMEOUT), STOP_TIMEOUT + 1)
            except TimeoutError:
                self.abort()
        await self._abandon()

    async def _abandon(self) -> None:
        """Drop any connection attempt and the output task, so nothing outlives the test."""
        self.cancel_connection_attempt()
        if self.transport is not None:
            waiter = asyncio.ensure_future(self.wait_until("disconnected", STOP_TIMEOUT))
            self.abort()
            with contextlib.suppress(TimeoutError):
                await waiter
        task = self._run_out_filters
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- messages in ------------------------------------------------------------------------

    async def next_message(
        self,
        timeout: float = 5.0,
        predicate: MessagePredicate | None = None,
    ) -> Message:
        """The oldest unread message that matches ``predicate`` (any, if None).

        Messages skipped because they do not match stay unread for later calls.
        Raises TimeoutError, naming what did arrive, if none comes within ``timeout``."""
        for index, msg in enumerate(self._unread):
            if predicate is None or predicate(msg):
                return self._unread.pop(index)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    msg = await self.inbox.get()
                    if predicate is None or predicate(msg):
                        return msg
                    self._unread.append(msg)
        except TimeoutError:
            seen = ", ".join(describe(m) for m in self._unread) or "nothing"
            raise TimeoutError(
                f"{self.boundjid.bare}: no matching message within {timeout} s; unread: {seen}"
            ) from None

    async def wait_for(
        self, predicate: MessagePredicate, timeout: float = 5.0
    ) -> Message:
        """The oldest unread message matching ``predicate``, waiting for it if need be.

        Every other message stays unread, in order, for later readers: what a test waits
        for cannot be taken for something else that happened to come first."""
        return await self.next_message(timeout, predicate)

    async def nothing_before(
        self,
        marker: MessagePredicate,
        unwanted: MessagePredicate,
        timeout: float = 5.0,
    ) -> Message:
        """Wait for the message matching ``marker``; fail if a message matching
        ``unwanted`` came before it. Returns the marker; the others stay unread.

        For "the bot said nothing to that": ask it something it answers in order after it
        (a barrier), and check what came before the answer, rather than wait a fixed time
        that a slow bot outlasts or unrelated traffic fills."""
        found = await self.next_message(timeout, lambda m: marker(m) or unwanted(m))
        if not marker(found):
            raise AssertionError(
                f"{self.boundjid.bare} got {describe(found)} before the message it waited for"
            )
        return found

    def drain(self) -> list[Message]:
        """Take every unread message, oldest first."""
        taken, self._unread = self._unread, []
        while not self.inbox.empty():
            taken.append(self.inbox.get_nowait())
        return taken

    async def expect_no_message(
        self, seconds: float, predicate: MessagePredicate | None = None
    ) -> list[Message]:
        """Wait ``seconds``; fail if an unread message matches ``predicate`` (any, if None).

        Returns (and takes) the unread messages that did not match; with no predicate that
        list is empty."""
        await asyncio.sleep(seconds)
        messages = self.drain()
        unwanted = [m for m in messages if predicate is None or predicate(m)]
        assert not unwanted, f"{self.boundjid.bare} expected no message, got: " + ", ".join(
            describe(m) for m in unwanted
        )
        return messages

    # -- messages out -----------------------------------------------------------------------

    def send_chat(self, to: str, body: str, lang: str | None = None) -> None:
        """A chat message; with `lang`, its xml:lang (the sender's language)."""
        msg = self.make_message(mto=JID(to), mbody=body, mtype="chat")
        if lang is not None:
            msg["lang"] = lang
        msg.send()

    async def ask(
        self, to: str, body: str, timeout: float = 5.0, lang: str | None = None
    ) -> str:
        """Send a chat message and return the body of the next reply from ``to``'s bare JID.

        An error reply raises AssertionError."""
        peer = JID(to).bare

        def is_reply(msg: Message) -> bool:
            if msg["from"].bare != peer:
                return False
            return msg["type"] == "error" or (
                msg["type"] in ("chat", "normal") and bool(msg["body"])
            )

        self.send_chat(to, body, lang)
        reply = await self.next_message(timeout, is_reply)
        assert reply["type"] != "error", f"{to} answered {body!r} with an error: {reply}"
        return str(reply["body"])

    # -- rooms ------------------------------------------------------------------------------

    async def join_room(self, room: str, nick: str, timeout: float = 10) -> None:
        """Join without history; return once our own presence (status 110) and the subject
        are in.  The subject message does not go to the inbox."""
        room_jid = JID(room)
        await self.plugin["xep_0045"].join_muc_wait(
            room_jid, nick, maxchars=0, maxstanzas=0, timeout=timeout
        )

        def from_join(msg: Message) -> bool:
            is_subject = msg["type"] == "groupchat" and not msg["body"]
            return msg["from"].bare == room_jid.bare and is_subject

        self._unread = [m for m in self.drain() if not from_join(m)]

    def leave_room(self, room: str, nick: str) -> asyncio.Future[None]:
        """Send the leave; the returned future is done when the room confirms it.

        Awaiting it is optional (``await asyncio.wait_for(c.leave_room(r, n), 10)``, or
        ``leave_room_wait``): until then, the room may still send to us."""
        me = JID(f"{JID(room).bare}/{nick}")
        left: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        name = f"TestClient left {me} {self.new_id()}"

        # A raw stanza handler: slixmpp raises no presence event for a room we already left.
        def on_unavailable(stanza: StanzaBase) -> None:
            if stanza["from"] == me and not left.done():
                left.set_result(None)

        self.register_handler(
            Callback(name, StanzaPath("presence@type=unavailable"), on_unavailable)
        )
        left.add_done_callback(lambda _: self.remove_handler(name))
        self.plugin["xep_0045"].leave_muc(JID(room), nick)
        return left

    async def leave_room_wait(self, room: str, nick: str, timeout: float = 10) -> None:
        """Leave and return once the room has confirmed it (our unavailable presence)."""
        await asyncio.wait_for(self.leave_room(room, nick), timeout)

    def send_groupchat(self, room: str, body: str) -> None:
        self.send_message(mto=JID(room), mbody=body, mtype="groupchat")
