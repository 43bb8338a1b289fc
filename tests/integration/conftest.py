"""Integration fixtures: one private XMPP server per test session, a fresh bot per test.

The server is Prosody, or ejabberd with ADDINBOT_TEST_XMPP=ejabberd (tests/run.sh runs the
core, rooms and spoofing files so, too). The fixture keeps its name, `prosody`, whichever
server it is; tests marked prosody_only are skipped on ejabberd (each says why).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url

from bot.config import Settings, load_settings
from bot.runner import Service
from tests.harness.ejabberd import Ejabberd
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import TestClient

PASSWORD = "integration-pw"
PEOPLE = ("addinbot", "admin", "alice", "bob", "carol", "mallory")


XMPP = os.environ.get("ADDINBOT_TEST_XMPP", "prosody")
if XMPP not in ("prosody", "ejabberd"):
    raise pytest.UsageError(f"ADDINBOT_TEST_XMPP={XMPP!r}: expected prosody or ejabberd")


def new_server(workdir: Path) -> Prosody | Ejabberd:
    """A private server of the kind this run tests (not started); both harnesses have the
    same interface."""
    if XMPP == "ejabberd":
        return Ejabberd(workdir)
    return Prosody(workdir)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("ADDINBOT_TEST_STORE", "sqlite") != "postgresql":
        # Several bots on one PostgreSQL: the PostgreSQL pass runs them; left out (not
        # skipped) of the passes whose bots keep their data in SQLite.
        shared = [item for item in items if item.get_closest_marker("postgres_only")]
        if shared:
            config.hook.pytest_deselected(items=shared)
            items[:] = [item for item in items if item not in shared]
    if XMPP == "prosody":
        return
    for item in items:
        marker = item.get_closest_marker("prosody_only")
        if marker is not None:
            why = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            item.add_marker(pytest.mark.skip(reason=f"Prosody only: {why}"))


@pytest.fixture(scope="session")
def prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prosody | Ejabberd]:
    """The session's server: Prosody, or ejabberd (ADDINBOT_TEST_XMPP=ejabberd)."""
    server = new_server(tmp_path_factory.mktemp(XMPP))
    server.start()
    for user in PEOPLE:
        server.register(user, PASSWORD)
    yield server
    server.stop()


def jid(server: Prosody, user: str) -> str:
    return f"{user}@{server.domain}"


@pytest.fixture
def room(prosody: Prosody) -> str:
    """A fresh room name for each test, in the served pool."""
    return f"r{uuid.uuid4().hex[:10]}@{prosody.muc}"


async def create_room(server: Prosody | Ejabberd, room: str, owner: str = "carol") -> str:
    """Make `room` exist (persistent; `owner` owns it) before the bot is told to join it:
    the bot never joins a room that does not exist. Returns the room."""
    client = TestClient(jid(server, owner), PASSWORD)
    await client.start(server.host, server.port)
    try:
        await client.join_room(room, owner)
        await client.leave_room_wait(room, owner)
    finally:
        await client.stop()
    return room


# With ADDINBOT_TEST_STORE=postgresql the bots of the integration tests keep their data in a
# fresh PostgreSQL database each (tests/run.sh runs the suite so a second time); otherwise in
# a fresh SQLite file. Tests about SQLite itself are marked sqlite_only and deselected there.
STORE = os.environ.get("ADDINBOT_TEST_STORE", "sqlite")
PG_URL = os.environ.get(
    "ADDINBOT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_CREATED: list[str] = []


def store_url(folder: Path) -> str:
    if STORE != "postgresql":
        return f"sqlite:///{folder}/addinbot.db"
    name = f"addinbot_it_{uuid.uuid4().hex[:12]}"
    server = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    server.dispose()
    _CREATED.append(name)
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session", autouse=True)
def _drop_test_databases() -> Iterator[None]:
    yield
    if not _CREATED:
        return
    server = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        for name in _CREATED:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    server.dispose()


def write_config(server: Prosody, folder: Path, **extra: str) -> Path:
    path = folder / "addinbot.toml"
    # [rooms] only when a language is asked for: some tests append their own [rooms].
    rooms = f'\n[rooms]\nlang = "{extra["rooms_lang"]}"\n' if "rooms_lang" in extra else ""
    path.write_text(
        f"""
[xmpp]
jid = "addinbot@{server.domain}"
password = "{PASSWORD}"
host = "127.0.0.1"
port = {server.port}
tls = "plain"
nick = "AddinBot"

[store]
url = "{store_url(folder)}"

[roles]
admins = ["admin@{server.domain}"]

[pools]
names = ["{server.muc}"]
{rooms}
[announce]
cooldown_s = {extra.get("cooldown_s", "86400")}

[limits]
sender = {extra.get("sender_limit", "0")}
room = {extra.get("room_limit", "0")}
window_s = {extra.get("window_s", "10")}
""",
        encoding="utf-8",
    )
    path.chmod(0o600)  # it holds the password: `run` and `check` warn when others may read it
    return path


@pytest.fixture
def bot_settings(prosody: Prosody, tmp_path: Path) -> Settings:
    return load_settings(write_config(prosody, tmp_path))


class BotHandle:
    """A running bot on the test's event loop, started and stopped by the test."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.service: Service | None = None

    async def start(self) -> Service:
        self.service = Service(self.settings)
        await self.service.start()
        await asyncio.wait_for(self.service.edge.online.wait(), 10)
        return self.service

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.stop()
            self.service = None

    async def in_room(self, room: str, timeout: float = 10) -> None:
        assert self.service is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.service.app.rooms.is_live(room):
            assert loop.time() < deadline, f"the bot did not join {room}"
            await asyncio.sleep(0.02)


@pytest.fixture
async def bot(bot_settings: Settings) -> AsyncIterator[BotHandle]:
    handle = BotHandle(bot_settings)
    await handle.start()
    yield handle
    await handle.stop()


@pytest.fixture
async def people(prosody: Prosody) -> AsyncIterator[Callable[..., Any]]:
    """Connect test clients by user name; all are stopped after the test."""
    started: list[TestClient] = []

    async def connect(user: str) -> TestClient:
        client = TestClient(jid(prosody, user), PASSWORD)
        await client.start(prosody.host, prosody.port)
        started.append(client)
        return client

    yield connect
    for client in started:
        await client.stop()
