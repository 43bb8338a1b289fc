"""Counters for operators, and a tiny HTTP server for `/metrics` and `/health`.

`METRICS` is the process's one set of counters; the bot counts into it with one-line calls
(commands by place and outcome, refusals by reason, announcements, reconnects), and a log
handler notes when the last error was logged. `[metrics] listen = "HOST:PORT"` serves them
in the Prometheus text format, with the gauges read at scrape time (XMPP connected, rooms
joined), and `/health`: 200 when the bot is connected to XMPP and the database answers, else
503 with one line per problem. Nothing is served unless `listen` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.config import ConfigError
from store import Store

log = logging.getLogger(__name__)

PLACES = ("direct", "room")
OUTCOMES = ("ok", "refused", "error")
REFUSALS = ("not_admin", "not_manager", "direct_only")
ANNOUNCEMENTS = ("room", "joiner")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_TIMEOUT_S = 5.0
HEALTH_DB_TIMEOUT_S = 3.0
MAX_REQUEST_BYTES = 8192


class Metrics:
    """Counters that only go up, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.commands = {(place, outcome): 0 for place in PLACES for outcome in OUTCOMES}
        self.refusals = dict.fromkeys(REFUSALS, 0)
        self.announcements = dict.fromkeys(ANNOUNCEMENTS, 0)
        self.reconnects = 0
        self.last_error = 0.0  # Unix time of the last record logged at ERROR or above

    def command(self, place: str, outcome: str) -> None:
        """One command answered; `place` is "direct" or "room" (a Place's name will do)."""
        key = (place.lower(), outcome)
        with self._lock:
            self.commands[key] = self.commands.get(key, 0) + 1

    def refusal(self, reason: str) -> None:
        """Someone asked for what their role does not allow (counted besides `command`)."""
        with self._lock:
            self.refusals[reason] = self.refusals.get(reason, 0) + 1

    def refused(self, place: str, reason: str) -> None:
        """A command refused before it reached the dispatcher."""
        self.command(place, "refused")
        self.refusal(reason)

    def announcement(self, to: str) -> None:
        """A room (`room`) or a joining participant (`joiner`) was told an add-in change."""
        with self._lock:
            self.announcements[to] = self.announcements.get(to, 0) + 1

    def reconnect(self) -> None:
        with self._lock:
            self.reconnects += 1

    def error_logged(self, when: float) -> None:
        with self._lock:
            self.last_error = max(self.last_error, when)

    def render(self, *, connected: bool, rooms_joined: int) -> str:
        """The Prometheus text exposition format (version 0.0.4)."""
        with self._lock:
            commands = sorted(self.commands.items())
            refusals = sorted(self.refusals.items())
            announcements = sorted(self.announcements.items())
            reconnects, last_error = self.reconnects, self.last_error
        lines: list[str] = []
        _family(lines, "addinbot_commands_total", "counter",
                "Commands answered, by where they came from and how they ended.",
                ((f'place="{_esc(p)}",outcome="{_esc(o)}"', n) for (p, o), n in commands))
        _family(lines, "addinbot_refusals_total", "counter",
                "Commands refused because of the sender's role, by reason.",
                ((f'reason="{_esc(r)}"', n) for r, n in refusals))
        _family(lines, "addinbot_announcements_total", "counter",
                "Add-in announcements sent, to a room or privately to a joining participant.",
                ((f'to="{_esc(t)}"', n) for t, n in announcements))
        _family(lines, "addinbot_reconnects_total", "counter",
                "Times the XMPP stream was lost and a reconnect was scheduled.",
                [("", reconnects)])
        _family(lines, "addinbot_xmpp_connected", "gauge",
                "1 while the bot has an XMPP session, else 0.", [("", int(connected))])
        _family(lines, "addinbot_rooms_joined", "gauge",
                "Rooms the bot is in right now.", [("", rooms_joined)])
        _family(lines, "addinbot_last_error_timestamp_seconds", "gauge",
                "Unix time of the last error logged (0: none since start).", [("", last_error)])
        return "\n".join(lines) + "\n"


def _family(
    lines: list[str], name: str, kind: str, help_text: str,
    samples: Iterable[tuple[str, float]],
) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        shown = repr(value) if isinstance(value, float) else str(value)
        lines.append(f"{name}{{{labels}}} {shown}" if labels else f"{name} {shown}")


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


METRICS = Metrics()


class ErrorClock(logging.Handler):
    """Notes the time of every record at ERROR or above, for the last-error gauge."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(logging.ERROR)
        self.metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        self.metrics.error_logged(record.created)


# --- the HTTP side -------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           503: "Service Unavailable"}


def database_problem(store: Store) -> str | None:
    """None when the database answers a trivial query, else what went wrong (blocking)."""
    return store.problem()


class MetricsServer:
    """Serves GET /metrics and GET /health on one address until stopped."""

    def __init__(
        self, store: Store, *, connected: Callable[[], bool],
        rooms_joined: Callable[[], int], metrics: Metrics = METRICS,
    ) -> None:
        self.store = store
        self.connected = connected
        self.rooms_joined = rooms_joined
        self.metrics = metrics
        self._server: asyncio.Server | None = None
        self._clock = ErrorClock(metrics)

    @property
    def port(self) -> int:
        """The port bound (useful when the configured one was 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the metrics server is not running")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)
        logging.getLogger().addHandler(self._clock)
        log.info("metrics and health on http://%s:%d/metrics", _url_host(host), self.port)

    async def stop(self) -> None:
        logging.getLogger().removeHandler(self._clock)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def health(self) -> list[str]:
        """What is wrong, one line each; empty when healthy."""
        problems = [] if self.connected() else ["xmpp: not connected"]
        try:
            async with asyncio.timeout(HEALTH_DB_TIMEOUT_S):
                problem = await self.store.run(database_problem, self.store)
        except TimeoutError:
            problem = f"database: no answer within {HEALTH_DB_TIMEOUT_S:.0f} s"
        if problem is not None:
            problems.append(problem)
        return problems

    async def respond(self, method: str, path: str) -> Response:
        path = path.split("?", 1)[0]
        if path not in ("/metrics", "/health"):
            return Response(404, "not found: try /metrics or /health\n")
        if method not in ("GET", "HEAD"):
            return Response(405, "only GET\n")
        if path == "/metrics":
            text = self.metrics.render(
                connected=self.connected(), rooms_joined=self.rooms_joined()
            )
            return Response(200, text, CONTENT_TYPE)
        problems = await self.health()
        if problems:
            return Response(503, "\n".join(problems) + "\n")
        return Response(200, "ok\n")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                method, path = await _read_request(reader)
                response = (
                    await self.respond(method, path) if method else Response(400, "bad request\n")
                )
                body = response.body.encode("utf-8")
                head = (
                    f"HTTP/1.1 {response.status} {REASONS.get(response.status, '')}\r\n"
                    f"Content-Type: {response.content_type}\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n"
                ).encode("ascii")
                writer.write(head if method == "HEAD" else head + body)
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, ValueError):
            pass  # a slow, broken or oversized request: just hang up
        except Exception:
            log.exception("metrics request failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    """The method and path of an HTTP/1.x request; its headers are read and ignored."""
    line = await reader.readline()
    size = len(line)
    while True:
        header = await reader.readline()
        size += len(header)
        if size > MAX_REQUEST_BYTES:
            return "", ""
        if header in (b"\r\n", b"\n", b""):
            break
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return "", ""
    return parts[0], parts[1]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def start_metrics(
    address: tuple[str, int] | None, store: Store, *, connected: Callable[[], bool],
    rooms_joined: Callable[[], int],
) -> MetricsServer | None:
    """The server for `[metrics] listen`, started; None when metrics are off."""
    if address is None:
        return None
    server = MetricsServer(store, connected=connected, rooms_joined=rooms_joined)
    try:
        await server.start(*address)
    except OSError as exc:
        host, port = address
        raise ConfigError([
            f"config: metrics.listen: cannot listen on {_url_host(host)}:{port}: "
            f"{os.strerror(exc.errno) if exc.errno else exc}"
        ]) from None
    return server
