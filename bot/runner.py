"""`addinbot run`: migrate, connect, serve until SIGINT/SIGTERM, leave rooms cleanly."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from bot.app import App
from bot.config import ConfigError, Settings, check_runnable
from bot.xmpp.client import XmppEdge
from store.database import make_engine
from store.migrate import upgrade

log = logging.getLogger("addinbot")


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # slixmpp logs whole stanzas (authentication included) at debug level: keep it quiet.
    logging.getLogger("slixmpp").setLevel(logging.WARNING)


def run(settings: Settings) -> int:
    problems = check_runnable(settings)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        return 2
    configure_logging()
    try:
        return asyncio.run(serve(settings))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Serve until `stop` is set (or a signal arrives); then leave every room and log out."""
    assert settings.xmpp is not None  # noqa: S101 - check_runnable saw to it
    engine = make_engine(settings.store.url)
    await asyncio.to_thread(upgrade, engine)
    edge = XmppEdge(settings.xmpp, settings.xmpp.secret(), settings.pools.names)
    app = App(settings, engine, edge)
    edge.bot = app
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await app.start()
    edge.start()
    log.info("addinbot %s starting for %s", settings.xmpp.jid, ", ".join(settings.pools.names))
    try:
        await stop.wait()
    finally:
        log.info("stopping: leaving rooms")
        await app.stop()
        await edge.stop()
        engine.dispose()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0
