"""Counters for operators, and a small HTTP server for `/metrics` and `/health`.

`METRICS` is the process's one set of counters (prometheus_client's, in a registry of their
own, never the library's process-global one); the bot counts into it with one-line calls
(commands by place and outcome, refusals by reason, announcements, reconnects), and a log
handler notes when the last error was logged. `[metrics] listen = "HOST:PORT"` serves them
in the Prometheus text format (or OpenMetrics, if the scraper asks for it), with the gauges
read at scrape time (XMPP connected, rooms joined), and `/health`: 200 when the bot is
connected to XMPP and the database answers, else 503 with one line per problem. Nothing is
served unless `listen` is set.

The server runs in threads of its own (the standard library's HTTP server): a scrape never
waits for the event loop, and a slow database check never holds it up. It serves at most
MOST_CONNECTIONS connections at once; the rest are closed at once, so a flood of idle
connections costs the bot no threads. Given a token (`[metrics] token`, required off
loopback), it answers only requests carrying it as `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

PLACES = ("direct", "room")
OUTCOMES = ("ok", "refused", "error", "relayed")
REFUSALS = ("not_admin", "not_manager", "not_owner", "direct_only")
ANNOUNCEMENTS = ("room", "joiner")
# What became of an invitation: accepted; declined after the bot looked in the room;
# declined without a look (unserved pool, no such room, nobody vouched, a cool-down, a
# limit); or dropped without a word (its sender was already told of a limit).
INVITATIONS = ("accepted", "declined_after_look", "declined", "dropped")

REQUEST_TIMEOUT_S = 5.0
HEALTH_DB_TIMEOUT_S = 3.0
MOST_CONNECTIONS = 8  # served at once; more are closed without a word
NOT_FOUND = b"not found: try /metrics or /health\n"


class Metrics(Collector):
    """Counters that only go up, from any thread, and the time of the last error logged."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.commands = Counter(
            "addinbot_commands", "Commands answered, by where they came from and how they ended.",
            ("place", "outcome"), registry=self.registry,
        )
        self.refusals = Counter(
            "addinbot_refusals", "Commands refused because of the sender's role, by reason.",
            ("reason",), registry=self.registry,
        )
        self.announcements = Counter(
            "addinbot_announcements",
            "Add-in announcements sent, to a room or privately to a joining participant.",
            ("to",), registry=self.registry,
        )
        self.invitations = Counter(
            "addinbot_invitations", "Invitations to rooms, by what became of them.",
            ("outcome",), registry=self.registry,
        )
        self.reconnects = Counter(
            "addinbot_reconnects", "Times the XMPP stream was lost and a reconnect was scheduled.",
            registry=self.registry,
        )
        self._last_error = Gauge(
            "addinbot_last_error_timestamp_seconds",
            "Unix time of the last error logged (0: none since start).", registry=self.registry,
        )
        self._lock = threading.Lock()
        self.last_error = 0.0  # Unix time of the last record logged at ERROR or above
        # Every known series from the start, at 0 (a series that appears later hides its
        # first increase from rate()).
        for place in PLACES:
            for outcome in OUTCOMES:
                self.commands.labels(place, outcome)
        for reason in REFUSALS:
            self.refusals.labels(reason)
        for to in ANNOUNCEMENTS:
            self.announcements.labels(to)
        for outcome in INVITATIONS:
            self.invitations.labels(outcome)

    def command(self, place: str, outcome: str) -> None:
        """One command answered; `place` is "direct" or "room" (a Place's name will do)."""
        self.commands.labels(place.lower(), outcome).inc()

    def refusal(self, reason: str) -> None:
        """Someone asked for what their role does not allow (counted besides `command`)."""
        self.refusals.labels(reason).inc()

    def refused(self, place: str, reason: str) -> None:
        """A command refused before it reached the dispatcher."""
        self.command(place, "refused")
        self.refusal(reason)

    def announcement(self, to: str) -> None:
        """A room (`room`) or a joining participant (`joiner`) was told an add-in change."""
        self.announcements.labels(to).inc()

    def invitation(self, outcome: str) -> None:
        """An invitation decided: one of INVITATIONS."""
        self.invitations.labels(outcome).inc()

    def invitations_seen(self, outcome: str) -> float:
        """How many invitations ended so far with `outcome` (for tests and benchmarks)."""
        value = self.registry.get_sample_value("addinbot_invitations_total", {"outcome": outcome})
        return value or 0.0

    def reconnect(self) -> None:
        self.reconnects.inc()

    def error_logged(self, when: float) -> None:
        with self._lock:
            self.last_error = max(self.last_error, when)
            self._last_error.set(self.last_error)

    def collect(self) -> Iterator[Metric]:
        """The registry's families without the `*_created` series prometheus_client adds
        to counters: the exposition stays the one operators have scraped all along."""
        for family in self.registry.collect():
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family


METRICS = Metrics()


class Scrape(Collector):
    """What /metrics shows: the counters, and the gauges read at scrape time."""

    def __init__(
        self, metrics: Metrics, connected: Callable[[], bool], rooms_joined: Callable[[], int],
    ) -> None:
        self.metrics = metrics
        self.connected = connected
        self.rooms_joined = rooms_joined

    def collect(self) -> Iterable[Metric]:
        yield from self.metrics.collect()
        yield GaugeMetricFamily(
            "addinbot_xmpp_connected", "1 while the bot has an XMPP session, else 0.",
            value=int(self.connected()),
        )
        yield GaugeMetricFamily(
            "addinbot_rooms_joined", "Rooms the bot is in right now.", value=self.rooms_joined(),
        )


class ErrorClock(logging.Handler):
    """Notes the time of every record at ERROR or above, for the last-error gauge."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(logging.ERROR)
        self.metrics = metrics

    def emit(self, record: logging.LogRecord) -> None:
        self.metrics.error_logged(record.created)


# --- the HTTP side -------------------------------------------------------------------------


class MetricsServer:
    """Serves GET /metrics and GET /health on one address until stopped."""

    def __init__(
        self, *, database_problem: Callable[[], str | None], connected: Callable[[], bool],
        rooms_joined: Callable[[], int], metrics: Metrics = METRICS, token: str | None = None,
    ) -> None:
        self.token = token.encode() if token else None  # every request must carry it
        self.database_problem = database_problem  # None, or what is wrong (blocking)
        self.connected = connected
        self.scrape = Scrape(metrics, connected, rooms_joined)
        self._clock = ErrorClock(metrics)
        self._http: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port bound (useful when the configured one was 0)."""
        if self._http is None:
            raise RuntimeError("the metrics server is not running")
        port: int = self._http.server_address[1]
        return port

    async def start(self, host: str, port: int) -> None:
        self._http = _HttpServer((host, port), self)
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.1},
            name="metrics", daemon=True,
        )
        self._thread.start()
        logging.getLogger().addHandler(self._clock)
        log.info("metrics and health on http://%s:%d/metrics", _url_host(host), self.port)

    async def stop(self) -> None:
        logging.getLogger().removeHandler(self._clock)
        if self._http is not None:
            await asyncio.to_thread(self._http.shutdown)
            self._http.server_close()
            self._http = None

    def health(self) -> list[str]:
        """What is wrong, one line each; empty when healthy (blocking, at most a few s)."""
        problems = [] if self.connected() else ["xmpp: not connected"]
        return self._check(problems)

    def authorised(self, header: str | None) -> bool:
        """The request carries the token (or none is asked)."""
        if self.token is None:
            return True
        scheme, _, given = (header or "").partition(" ")
        offered = given.strip().encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(offered, self.token)

    def _check(self, problems: list[str]) -> list[str]:
        answer: list[str | None] = []
        # A daemon thread: a database that never answers holds neither this request nor
        # the process's exit.
        check = threading.Thread(
            target=lambda: answer.append(self.database_problem()), name="health", daemon=True
        )
        check.start()
        check.join(HEALTH_DB_TIMEOUT_S)
        problem = answer[0] if answer else f"database: no answer within {HEALTH_DB_TIMEOUT_S:.0f} s"
        if problem is not None:
            problems.append(problem)
        return problems


class _HttpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: MetricsServer) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.owner = owner
        self.active = 0  # connections being served, each on a thread
        self.active_lock = threading.Lock()
        super().__init__(address, _Handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """At most MOST_CONNECTIONS at once: any more is closed now, costing no thread."""
        with self.active_lock:
            if self.active >= MOST_CONNECTIONS:
                return False
            self.active += 1
            return True

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.active_lock:
                self.active -= 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # a malformed request line still gets a status line
    timeout = REQUEST_TIMEOUT_S  # a slow request is dropped

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _not_allowed(self) -> None:
        if self._path() in ("/metrics", "/health"):
            self._send(405, b"only GET\n", "text/plain; charset=utf-8")
        else:
            self._send(404, NOT_FOUND, "text/plain; charset=utf-8")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _path(self) -> str:
        return self.path.split("?", 1)[0]

    def _answer(self, *, send_body: bool) -> None:
        owner = self.server.owner  # type: ignore[attr-defined]
        plain = "text/plain; charset=utf-8"
        if not owner.authorised(self.headers.get("Authorization")):
            self._send(401, b"a bearer token is required\n", plain, send_body=send_body,
                       extra={"WWW-Authenticate": 'Bearer realm="addinbot"'})
        elif self._path() == "/metrics":
            encode, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._send(200, encode(owner.scrape), content_type, send_body=send_body)
        elif self._path() == "/health":
            problems = owner.health()
            if problems:
                self._send(503, ("\n".join(problems) + "\n").encode(), plain, send_body=send_body)
            else:
                self._send(200, b"ok\n", plain, send_body=send_body)
        else:
            self._send(404, NOT_FOUND, plain, send_body=send_body)

    def _send(
        self, status: int, body: bytes, content_type: str, *, send_body: bool = True,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: %s " + format, self.address_string(), *args)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def start_metrics(
    address: tuple[str, int] | None, *, database_problem: Callable[[], str | None],
    connected: Callable[[], bool], rooms_joined: Callable[[], int], token: str | None = None,
) -> MetricsServer | None:
    """The server for `[metrics] listen`, started; None when metrics are off."""
    if address is None:
        return None
    server = MetricsServer(
        database_problem=database_problem, connected=connected, rooms_joined=rooms_joined,
        token=token,
    )
    try:
        await server.start(*address)
    except OSError as exc:
        host, port = address
        raise MetricsUnavailable(
            f"metrics: cannot listen on {_url_host(host)}:{port} (metrics.listen): "
            f"{os.strerror(exc.errno) if exc.errno else exc}"
        ) from None
    return server


class MetricsUnavailable(Exception):
    """The metrics address is taken (or otherwise refused) at start: not a fault of the
    configuration, maybe gone in a moment, so `run` exits 1 and a supervisor tries again."""
