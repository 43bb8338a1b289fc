"""Shared fixtures: the environment, the store on both backends, and test settings.

Sections:
- environment: tests never see ADDINBOT_* variables from the shell that ran them
- store: `store`, a migrated, empty database on SQLite and on PostgreSQL
- settings: `settings`, a factory for `bot.config.Settings`
- edge: `loop` and `make_edge`/`edge`, the bot's XMPP edge built offline, for its filters
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from bot.config import Settings, XmppSettings
from bot.xmpp.client import XmppEdge
from store import Store

# --- environment ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_addinbot_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read ADDINBOT_<SECTION>__<KEY>: a stray one in the shell must not leak in.
    The test suite's own switches (ADDINBOT_TEST_*) are kept."""
    for name in list(os.environ):
        if name.upper().startswith("ADDINBOT_") and not name.upper().startswith("ADDINBOT_TEST_"):
            monkeypatch.delenv(name)


# --- store ---------------------------------------------------------------------------------

PG_URL = os.environ.get(
    "ADDINBOT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TABLES = ("announcement", "room", "addin", "pool", "auditevent", "lease")  # children first


@pytest.fixture(scope="session")
def postgres_store() -> Iterator[Store]:
    """A database of its own on the test server, migrated once, dropped at the end.

    An unreachable server FAILS the postgres tests (CI starts one; a skip would hide a broken
    backend), unless ADDINBOT_TEST_NO_PG=1 says there is deliberately none."""
    if os.environ.get("ADDINBOT_TEST_NO_PG") == "1":
        pytest.skip("ADDINBOT_TEST_NO_PG=1: PostgreSQL tests are switched off")
    server_url = make_url(PG_URL)
    name = f"addinbot_t_{os.getpid()}_{secrets.token_hex(4)}"
    admin = sqlalchemy.create_engine(
        server_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    unreachable = None
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sqlalchemy.exc.OperationalError as exc:
        unreachable = str(exc.orig).strip()
    if unreachable is not None:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL at {server_url.render_as_string()} is unreachable ({unreachable}); "
            f"start it, point ADDINBOT_TEST_PG_URL at one, or set ADDINBOT_TEST_NO_PG=1",
            pytrace=False,
        )
    store = Store.open(server_url.set(database=name).render_as_string(hide_password=False))
    try:
        store.upgrade()
        yield store
    finally:
        store.close()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated database with no rows, on each backend."""
    if request.param == "sqlite":
        sqlite = Store.open(f"sqlite:///{tmp_path}/t.db")
        sqlite.upgrade()
        yield sqlite
        sqlite.close()
        return
    postgres: Store = request.getfixturevalue("postgres_store")
    with postgres.engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    yield postgres


# --- settings ------------------------------------------------------------------------------

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def settings(request: pytest.FixtureRequest) -> SettingsFactory:
    """`settings(pools={"names": [...]}, ...)`: test settings; a keyword replaces that section.
    The store URL is the `store`'s when the test uses one."""

    def make(**sections: Any) -> Settings:
        store_url = "sqlite:///unused.db"
        if "store" in request.fixturenames:
            used: Store = request.getfixturevalue("store")
            store_url = used.url
        values: dict[str, Any] = {
            "xmpp": {
                "jid": "addinbot@localhost", "password": "pw", "host": "127.0.0.1",
                "tls": "plain",
            },
            "store": {"url": store_url},
            "roles": {"admins": ["admin@localhost"]},
            "pools": {"names": ["conference.localhost"]},
        }
        values.update(sections)
        return Settings(**values)

    return make


# --- edge ----------------------------------------------------------------------------------


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop of the test's own, current while it runs (an edge built with none would make
    one that nothing closes), closed after."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)
    loop.close()


@pytest.fixture
def make_edge(loop: asyncio.AbstractEventLoop) -> Callable[[], XmppEdge]:
    """Builds the bot's XMPP edge, not connected, in ``loop``."""
    settings = XmppSettings(jid="addinbot@localhost", tls="plain", host="127.0.0.1")
    return lambda: XmppEdge(settings, "pw", ["conference.localhost"])


@pytest.fixture
def edge(make_edge: Callable[[], XmppEdge]) -> XmppEdge:
    return make_edge()
