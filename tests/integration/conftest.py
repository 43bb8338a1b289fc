"""Integration fixtures: one private Prosody per test session, a fresh bot per test."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings, load_settings
from bot.runner import Service
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import TestClient

PASSWORD = "integration-pw"
PEOPLE = ("addinbot", "admin", "alice", "bob", "carol", "mallory")


@pytest.fixture(scope="session")
def prosody(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prosody]:
    server = Prosody(tmp_path_factory.mktemp("prosody"))
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


def write_config(server: Prosody, folder: Path, **extra: str) -> Path:
    path = folder / "addinbot.toml"
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
url = "sqlite:///{folder}/addinbot.db"

[roles]
admins = ["admin@{server.domain}"]

[pools]
names = ["{server.muc}"]

[announce]
cooldown_s = {extra.get("cooldown_s", "86400")}

[limits]
sender = {extra.get("sender_limit", "0")}
room = {extra.get("room_limit", "0")}
window_s = {extra.get("window_s", "10")}
""",
        encoding="utf-8",
    )
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
