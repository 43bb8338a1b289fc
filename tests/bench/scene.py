"""Who and what the benchmark sets up: accounts, rooms, the bot's database, readiness."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from bot import addins
from bot.values import Actor
from store import Store
from tests.bench.crowd import crowd_user
from tests.bench.rawxmpp import PRESENCE, RawClient, body_from

PASSWORD = "bench-pw"
DOMAIN = "localhost"
MUC = "conference.localhost"
BOT = "addinbot"
BOT_NICK = "AddinBot"
ADMIN = "admin"  # the measurer: an admin of the bot
ECHO = "echo"
SENDER = "sender"
ANNOUNCER = "announcer"
BARE = "bare"
SEEDER = Actor("bench", "cli")

CMD_ROOM = f"cmd@{MUC}"  # the room where `!addin` is asked
ATTACH_ROOM = f"attach@{MUC}"  # the room whose add-in `attach` changes (measurer not in it)
ECHO_ROOM = f"echo@{MUC}"  # the room echo's `!echo` baseline


def addin_name(index: int) -> str:
    return f"Add-in {index:03d}"


def addin_url(index: int) -> str:
    return f"https://addins.example.org/panel/{index:03d}"


BOT_STORMS = ("bot", "bot_held")  # the storm kinds whose rooms the bot serves


def storm_room(kind: str, round_: int) -> str:
    return f"storm-{kind}-{round_}@{MUC}"


@dataclass(frozen=True)
class Sizes:
    """How much of everything: the full run's, or --quick's."""

    addins_listed: int = 100
    samples: int = 1000
    warmup: int = 50
    block: int = 50
    crowd: int = 500
    crowd_procs: int = 2
    storm_rounds: int = 5
    start_rooms: int = 1000
    start_rounds: int = 5
    store_addins: int = 10_000
    store_rooms: int = 100_000
    store_samples: int = 300

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            samples=100, warmup=10, block=20, crowd=50, crowd_procs=1, storm_rounds=1,
            start_rooms=100, start_rounds=1, store_addins=1000, store_rooms=10_000,
            store_samples=50,
        )


def accounts(sizes: Sizes) -> dict[str, str]:
    users = [BOT, ADMIN, ECHO, SENDER, ANNOUNCER, BARE]
    users += [crowd_user(i) for i in range(sizes.crowd)]
    return dict.fromkeys(users, PASSWORD)


def seed_bot_db(path: Path, sizes: Sizes) -> str:
    """The bot's SQLite database: the add-ins, and the rooms it serves (remembered)."""
    url = f"sqlite:///{path}"
    store = Store.open(url)
    try:
        store.upgrade()
        for index in range(sizes.addins_listed):
            addins.register(store, SEEDER, pool=MUC, name=addin_name(index), url=addin_url(index))
        for room in bot_rooms(sizes):
            addins.set_joined(store, SEEDER, room=room, joined=True)
            addins.attach(store, SEEDER, room=room, name=addin_name(1))
    finally:
        store.close()
    return url


def bot_rooms(sizes: Sizes) -> list[str]:
    """The rooms the bot of parts 1 and 2 serves (remembered in its database)."""
    rooms = [CMD_ROOM, ATTACH_ROOM]
    return rooms + [storm_room(kind, r) for r in range(sizes.storm_rounds) for kind in BOT_STORMS]


def seed_rooms(store: Store, rooms: list[str]) -> None:
    for room in rooms:
        addins.set_joined(store, SEEDER, room=room, joined=True)


async def connect(user: str, port: int, resource: str = "bench") -> RawClient:
    client = RawClient(user, DOMAIN, PASSWORD, resource)
    await client.connect("127.0.0.1", port)
    client.presence()  # available: chat to the bare JID reaches us
    return client


async def until_answers(client: RawClient, peer: str, body: str, timeout: float = 30.0) -> None:
    """Ask ``peer`` (a bare JID) until it answers: it is connected and serving."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        reply = client.expect(lambda s: body_from(s, peer, bare=True, kind="chat"))
        client.message(peer, body)
        try:
            await asyncio.wait_for(reply, 1.0)
            return
        except TimeoutError:
            if loop.time() > deadline:
                raise TimeoutError(f"{peer} did not answer within {timeout:.0f} s") from None


async def join_and_see(
    client: RawClient, room: str, nick: str, occupant_nick: str, timeout: float = 30.0
) -> None:
    """Join ``room`` and return once ``occupant_nick`` is seen in it."""
    seen = client.expect(
        lambda s: s.tag == PRESENCE and s.get("from") == f"{room}/{occupant_nick}"
        and s.get("type") != "unavailable"
    )
    client.join(room, nick)
    await asyncio.wait_for(seen, timeout)
