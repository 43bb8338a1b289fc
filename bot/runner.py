"""`addinbot run`: migrate, connect, serve until SIGINT/SIGTERM, leave rooms cleanly."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import sys
from pathlib import Path

from bot.app import App
from bot.config import ConfigError, Settings, check_runnable, exposed_secrets
from bot.logs import configure_logging
from bot.metrics import MetricsServer, MetricsUnavailable, start_metrics
from bot.xmpp.client import XmppEdge
from store import Store, sole

log = logging.getLogger("addinbot")


def run(settings: Settings, *, config_file: Path | None = None) -> int:
    problems = check_runnable(settings)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return 2
    for warning in exposed_secrets(settings, config_file):
        print(warning, file=sys.stderr)
    configure_logging(settings.log.format)
    try:
        alone = sole.take(settings.store.url)  # SQLite: one process per file
    except OSError as exc:
        print(f"addinbot: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(serve(settings))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except MetricsUnavailable as exc:  # a busy port: maybe free in a moment (systemd retries)
        print(exc, file=sys.stderr)
        return 1
    finally:
        alone.close()


class Service:
    """The running bot: store, XMPP edge and the bot between them."""

    def __init__(self, settings: Settings) -> None:
        assert settings.xmpp is not None  # noqa: S101 - check_runnable saw to it
        self.settings = settings
        self.store = Store.open(settings.store.url)
        # Several processes on one database: each its own id, and its own resource from it
        # (the desk holder answers the bare JID; README "Several processes").
        self.me = secrets.token_hex(4)
        shared = settings.cluster.enabled
        self.edge = XmppEdge(
            settings.xmpp, settings.xmpp.secret(), settings.pools.names,
            resource=f"{settings.xmpp.resource}-{self.me}" if shared else None, desk=not shared,
        )
        if shared:  # a process cut off from the server gives its rooms up within seconds
            cluster = settings.cluster
            self.edge.liveness.server_every_s = cluster.renew_s
            # (not sooner: a server busy letting thousands of rooms' joins in answers late)
            self.edge.liveness.server_timeout_s = cluster.lease_s - cluster.renew_s
        self.app = App(settings, self.store, self.edge, me=self.me, on_desk=self.edge.set_desk)
        self.edge.bot = self.app
        self.metrics: MetricsServer | None = None  # [metrics] listen: /metrics and /health

    async def start(self) -> None:
        await self.store.run(self.store.upgrade)
        await self.app.start()
        self.metrics = await start_metrics(
            self.settings.metrics.address, database_problem=self.store.problem,
            token=self.settings.metrics.secret(),
            connected=self.edge.online.is_set,
            # Read on the metrics server's threads: list() copies the rooms in one step.
            rooms_joined=lambda: sum(s.joined for s in list(self.app.rooms.rooms.values())),
        )
        self.edge.start()

    async def stop(self) -> None:
        """Leave every room, log out, close the database."""
        if self.metrics is not None:
            await self.metrics.stop()
        await self.app.stop()
        await self.edge.stop()
        # Queries still running (for cancelled work) finish before the close.
        await self.store.settle()
        self.store.close()


async def serve(settings: Settings) -> int:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    service = Service(settings)
    await service.start()
    assert settings.xmpp is not None  # noqa: S101 - Service checked it
    log.info("addinbot %s starting for %s", settings.xmpp.jid, ", ".join(settings.pools.names))
    try:
        await stop.wait()
    finally:
        log.info("stopping: leaving rooms")
        await service.stop()
    return 0
