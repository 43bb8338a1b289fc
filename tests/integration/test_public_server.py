"""Issue 12 on a real Prosody: what any account (or a typo) could make the bot do, and must
not — rooms created by the bot's joins, invitations, ad-hoc sessions, occupant ids the room
does not vouch for, and the metrics endpoint."""

from __future__ import annotations

import asyncio
import socket
import threading
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from slixmpp import JID
from slixmpp.exceptions import IqError

from bot import addins
from bot.config import ConfigError, Settings, load_settings
from bot.metrics import MOST_CONNECTIONS, MetricsServer
from bot.xmpp.adhoc import MOST_PER_REQUESTER
from store import Store
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import TestClient
from tests.integration.conftest import BotHandle, jid

pytestmark = pytest.mark.xmpp

People = Callable[[str], Awaitable[TestClient]]


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def room_exists_on_server(client: TestClient, prosody: Prosody, room: str) -> bool:
    """Whether the MUC service has the room: its disco#info answers, or item-not-found."""
    try:
        await client.plugin["xep_0030"].get_info(jid=room, timeout=10)
    except IqError as exc:
        if exc.condition != "item-not-found":
            raise
        return False
    return True


async def listed_rooms(client: TestClient, prosody: Prosody) -> set[str]:
    items = await client.plugin["xep_0030"].get_items(jid=prosody.muc, timeout=10)
    return {str(item[0]) for item in items["disco_items"]["items"]}


# --- 2. the bot never creates a room ----------------------------------------------------------


async def test_a_typo_in_join_is_refused_and_creates_no_room(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    admin = await people("admin")
    reply = await admin.ask(jid(prosody, "addinbot"), f"join {room}")
    assert reply == f"There is no room {room}: the bot joins only rooms that exist."
    assert not await room_exists_on_server(admin, prosody, room)
    assert room not in await listed_rooms(admin, prosody)
    assert bot.service is not None
    assert addins.room_info(bot.service.store, room) is None or not (
        addins.room_info(bot.service.store, room).joined
    )
    assert [e for e in addins.audit(bot.service.store, limit=100) if e.room == room] == []


async def test_an_autojoin_room_that_does_not_exist_is_not_created_and_is_tried_later(
    bot_settings: Settings, people: People, prosody: Prosody, room: str
) -> None:
    settings = bot_settings.model_copy(
        update={"rooms": bot_settings.rooms.model_copy(update={"autojoin": [room]})}
    )
    handle = BotHandle(settings)
    await handle.start()
    try:
        assert handle.service is not None
        app = handle.service.app
        membership = app.membership
        # Either it found the room missing, or (the defect) its join created the room.
        await until(
            lambda: room in getattr(membership, "absent", ()) or app.rooms.is_live(room),
            "the bot to find the room missing, or to be in it",
        )
        admin = await people("admin")
        assert not await room_exists_on_server(admin, prosody, room)
        assert not app.rooms.is_live(room)
        # Once the room exists, the next try joins it.
        alice = await people("alice")
        await alice.join_room(room, "alice")
        membership.join(room)
        await handle.in_room(room, timeout=15)
        assert room not in membership.absent
    finally:
        await handle.stop()


# --- 8. the metrics endpoint: loopback unless asked, a token off loopback, few connections ---


def http_status(port: int, path: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_metrics_off_loopback_need_to_be_asked_for_and_a_token(tmp_path: Path) -> None:
    config = tmp_path / "addinbot.toml"
    config.write_text('[metrics]\nlisten = "0.0.0.0:9811"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert caught.value.problems == [
        "config: metrics.listen: 0.0.0.0 is not a loopback address; set metrics.allow_remote"
        " = true (with metrics.token or token_file) to serve it"
    ]
    config.write_text('[metrics]\nlisten = "0.0.0.0:9811"\nallow_remote = true\n',
                      encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert caught.value.problems == [
        "config: metrics.listen: a non-loopback address needs metrics.token or "
        "metrics.token_file (asked as a bearer token)"
    ]
    (tmp_path / "token").write_text(TOKEN + "\n", encoding="utf-8")
    config.write_text(
        f'[metrics]\nlisten = "0.0.0.0:9811"\nallow_remote = true\n'
        f'token_file = "{tmp_path / "token"}"\n', encoding="utf-8",
    )
    assert load_settings(config).metrics.secret() == TOKEN


TOKEN = "s3cret-metrics-token-0123456789"


async def test_metrics_with_a_token_answer_only_those_who_carry_it(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/m.db")
    server = MetricsServer(
        database_problem=store.problem, connected=lambda: True, rooms_joined=lambda: 0,
        token=TOKEN,
    )
    await server.start("127.0.0.1", 0)
    try:
        for path in ("/metrics", "/health"):
            assert await asyncio.to_thread(http_status, server.port, path) == 401
            assert await asyncio.to_thread(http_status, server.port, path, "wrong") == 401
            assert await asyncio.to_thread(http_status, server.port, path, TOKEN) == 200
    finally:
        await server.stop()
        store.close()


async def test_a_flood_of_idle_connections_costs_the_bot_few_threads(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/m.db")
    server = MetricsServer(
        database_problem=store.problem, connected=lambda: True, rooms_joined=lambda: 0
    )
    await server.start("127.0.0.1", 0)
    before = threading.active_count()
    idle: list[socket.socket] = []
    try:
        for _ in range(300):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        # The server has taken every connection once all but the served ones are closed by
        # it (read: EOF) — or, the defect, it serves all 300 (each on a thread of its own).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        most = 0
        while True:
            most = max(most, threading.active_count() - before)
            closed = sum(1 for s in idle if _closed(s))
            if closed >= len(idle) - MOST_CONNECTIONS or loop.time() > deadline:
                break
            await asyncio.sleep(0.05)
        assert most <= MOST_CONNECTIONS, f"{most} threads for 300 idle connections"
        assert closed >= len(idle) - MOST_CONNECTIONS
        for sock in idle:
            sock.close()
        # Served again once they are gone.
        assert await asyncio.to_thread(http_status, server.port, "/health") == 200
    finally:
        for sock in idle:
            sock.close()
        await server.stop()
        store.close()


def _closed(sock: socket.socket) -> bool:
    """The peer closed it (EOF now readable), without blocking."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


# --- 7. occupant ids only from rooms that vouch for them -------------------------------------

NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"


async def test_an_occupant_id_the_room_does_not_advertise_is_not_taken(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    alice = await people("alice")
    await alice.join_room(room, "alice")  # creates it: semi-anonymous, no XEP-0421 here
    info = await alice.plugin["xep_0030"].get_info(jid=room, timeout=10)
    advertised = NS_OCCUPANT_ID in info["disco_info"]["features"]
    admin = await people("admin")
    assert (await admin.ask(jid(prosody, "addinbot"), f"join {room}")).startswith("Joining")
    await bot.in_room(room)
    mallory = await people("mallory")
    await mallory.join_room(room, "mallory")
    # mallory claims alice's identity (any id she likes) in a presence of her own.
    claim = mallory.make_presence(pto=f"{room}/mallory")
    claim.xml.append(ET.Element(f"{{{NS_OCCUPANT_ID}}}occupant-id", {"id": "alices-id"}))
    claim.send()
    carol = await people("carol")  # the room sends presences in order: carol's comes after
    await carol.join_room(room, "carol")
    assert bot.service is not None
    rooms = bot.service.app.rooms
    await until(lambda: rooms.occupant(room, "carol") is not None, "carol's presence")
    occupant = rooms.occupant(room, "mallory")
    assert occupant is not None
    assert occupant.occupant_id != "alices-id"
    if not advertised:
        assert occupant.person == "nick:mallory"


# --- 6. ad-hoc sessions: a cap per requester, and an admin's form never evicted ----------------


async def test_a_stranger_opening_hundreds_of_forms_evicts_no_admins_form(
    bot: BotHandle, people: People, prosody: Prosody, room: str
) -> None:
    """Before: one cap of 200 for all, the oldest evicted: a manager of a room of her own
    opened 200 forms in 11 s and the admin's open form was gone (bad-sessionid)."""
    assert bot.service is not None
    to = JID(bot.service.edge.boundjid.full)
    mallory = await people("mallory")
    mallory.register_plugin("xep_0050")
    await mallory.join_room(room, "mallory")  # she owns the room: a manager, offered Attach
    muc = mallory.plugin["xep_0045"]
    form = await muc.get_room_config(room)
    form.get_fields()["muc#roomconfig_whois"]["value"] = "anyone"
    await muc.set_room_config(room, form)
    admin = await people("admin")
    admin.register_plugin("xep_0050")
    assert (await admin.ask(jid(prosody, "addinbot"), f"join {room}")).startswith("Joining")
    await bot.in_room(room)
    await until(lambda: bot.service is not None and bot.service.app.rooms.occupant(
        room, "mallory") is not None, "mallory seen in the room")

    adhoc = admin.plugin["xep_0050"]
    opened = await adhoc.send_command(to, "register", timeout=10)
    assert opened["command"]["status"] == "executing"

    started = asyncio.get_running_loop().time()
    hers = await asyncio.gather(*(
        mallory.plugin["xep_0050"].send_command(to, "attach", timeout=30) for _ in range(250)
    ))
    took = asyncio.get_running_loop().time() - started
    assert all(step["command"]["status"] == "executing" for step in hers)
    open_now = bot.service.edge.adhoc.sessions
    print(f"\n250 forms opened by one manager in {took:.2f} s; {len(open_now)} open in all")

    # The admin's form is still open: completing it registers the add-in.
    fill = admin.plugin["xep_0004"].make_form("submit")
    fill.add_field(var="name", value="Stocks")
    fill.add_field(var="url", value="https://stocks.example.org/")
    done = await adhoc.send_command(
        to, "register", action="complete", payload=fill,
        sessionid=opened["command"]["sessionid"], timeout=10,
    )
    assert done["command"]["status"] == "completed"
    assert [note[0] for note in done["command"]["notes"]] == ["info"], done
    listed = addins.list_addins(bot.service.store, pool=prosody.muc).items
    assert [name for name, _url, _uses in listed] == ["Stocks"]
    # She holds a few forms at most (the newest she opened; the others were evicted).
    mine = [sid for sid, s in open_now.items() if s.requester.startswith("mallory@")]
    assert len(mine) == MOST_PER_REQUESTER
    assert set(mine) <= {step["command"]["sessionid"] for step in hers}
