"""`addinbot check`'s XMPP half: connect and authenticate as the bot would, then hang up.

The probe stops as soon as the server accepts the credentials: it binds no resource and
sends no presence, so a running bot on the same account does not notice it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from typing import Any

import slixmpp

from bot.config import XmppSettings
from bot.xmpp.client import configure_transport

STOP_TIMEOUT_S = 2.0


class _Probe(slixmpp.ClientXMPP):
    def __init__(self, settings: XmppSettings, password: str) -> None:
        super().__init__(settings.jid, password)
        self.settings = settings
        configure_transport(self, settings)  # the same transport choices as the bot's
        self.whitespace_keepalive = False
        self.outcome: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._refusal = ""
        for event, handler in {
            "auth_success": self._auth_success,
            "failed_auth": self._failed_auth,
            "failed_all_auth": self._failed_all_auth,
            "connection_failed": self._connection_failed,
            "ssl_invalid_chain": self._bad_certificate,
            "stream_error": self._stream_error,
            "disconnected": self._disconnected,
        }.items():
            self.add_event_handler(event, handler)

    @property
    def where(self) -> str:
        return f"{self.settings.server_host}:{self.settings.server_port}"

    def _settle(self, problem: str | None) -> None:
        if not self.outcome.done():
            self.outcome.set_result(problem)

    def _auth_success(self, _stanza: Any) -> None:
        if self.settings.tls == "starttls" and "starttls" not in self.features:
            self._settle(
                f"{self.where} offered no STARTTLS, so the password went unencrypted; "
                "enable TLS on the server (tls = \"plain\" is for loopback servers only)"
            )
        else:
            self._settle(None)

    def _failed_auth(self, stanza: Any) -> None:
        condition = stanza["condition"] if stanza is not None else ""
        self._refusal = self._refusal or str(condition or "")

    def _failed_all_auth(self, _event: Any) -> None:
        if self._refusal:
            self._settle(
                f"{self.where} refused the password for {self.settings.jid} ({self._refusal})"
            )
        elif self.settings.tls == "starttls" and "starttls" not in self.features:
            self._settle(
                f"{self.where} offered no STARTTLS (tls = \"starttls\"), so the bot did not "
                "send its password"
            )
        else:
            self._settle(
                f"{self.where} offers no login method usable on this connection "
                f"(tls = \"{self.settings.tls}\")"
            )

    def _connection_failed(self, error: Any) -> None:
        if isinstance(error, ssl.SSLError):  # direct TLS: its errno is not the system's
            self._bad_certificate(error)
            return
        code = getattr(error, "errno", None)
        reason = os.strerror(code) if isinstance(code, int) else str(error)
        self._settle(f"cannot connect to {self.where}: {reason}")

    def _bad_certificate(self, error: Any) -> None:
        if isinstance(error, ssl.SSLCertVerificationError):
            self._settle(
                f"TLS with {self.where} failed: {error.verify_message} (the certificate must "
                f"be valid for {self.boundjid.domain}; set xmpp.ca_file for a private CA)"
            )
            return
        reason = getattr(error, "reason", None) or error
        self._settle(f"TLS with {self.where} failed: {reason} (is tls = \"{self.settings.tls}\" "
                     "what the server speaks on this port?)")

    def _stream_error(self, error: Any) -> None:
        condition = error["condition"] if error is not None else ""
        text = error["text"] if error is not None else ""
        self._settle(f"{self.where} closed the stream: {condition} {text}".rstrip())

    def _disconnected(self, _reason: Any) -> None:
        # A failed STARTTLS handshake drops the connection just before slixmpp reports why:
        # give the reason a moment to arrive.
        self.loop.call_later(
            0.2, self._settle,
            f"{self.where} closed the connection before the bot was authenticated",
        )

    async def close(self) -> None:
        self.cancel_connection_attempt()
        if self.transport is not None:
            waiter = asyncio.ensure_future(self.wait_until("disconnected", STOP_TIMEOUT_S))
            self.abort()
            with contextlib.suppress(TimeoutError):
                await waiter


async def probe(settings: XmppSettings, password: str, within_s: float) -> str | None:
    """None when the server accepted the bot's credentials, else the problem in one line."""
    client = _Probe(settings, password)
    try:
        client.connect(settings.server_host, settings.server_port)
        try:
            async with asyncio.timeout(within_s):
                return await client.outcome
        except TimeoutError:
            return f"no answer from {client.where} within {within_s:g} s"
    finally:
        await client.close()
