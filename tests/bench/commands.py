"""Part 1, command round trips: serial request, wait for the answer, next request.

The measurer (a RawClient, an admin of the bot) takes every sample; the kinds are
interleaved in blocks so that drift in the machine hits all of them alike.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.bench import scene
from tests.bench.rawxmpp import BODY, RawClient, Stanza, body_from

BOT_JID = f"{scene.BOT}@{scene.DOMAIN}"
ECHO_JID = f"{scene.ECHO}@{scene.DOMAIN}"
TIMEOUT_S = 10.0
LIST_CHARS = 1300  # about the length of the answer to `list` with 100 add-ins


@dataclass(frozen=True)
class Kind:
    key: str
    label: str
    baseline: str | None  # the key of the kind it is compared with
    send: Callable[[RawClient, int], float]
    reply: Callable[[Stanza], bool]
    check: Callable[[str], bool]  # the answer reads as expected


def _dm(peer: str, body: Callable[[int], str]) -> Callable[[RawClient, int], float]:
    return lambda client, i: client.message(peer, body(i))


def _room(room: str, body: Callable[[int], str]) -> Callable[[RawClient, int], float]:
    return lambda client, i: client.message(room, body(i), kind="groupchat")


def _attach_body(i: int) -> str:
    return f'attach {scene.ATTACH_ROOM} "{scene.addin_name(2 + i % 2)}"'


KINDS = (
    Kind("echo_dm", "echo, direct message", None, _dm(ECHO_JID, lambda i: f"ping {i}"),
         lambda s: body_from(s, ECHO_JID, bare=True, kind="chat"),
         lambda text: text.startswith("ping")),
    Kind("echo_dm_big", "echo, direct message, `list`-sized answer", None,
         _dm(ECHO_JID, lambda i: f"big {LIST_CHARS}"),
         lambda s: body_from(s, ECHO_JID, bare=True, kind="chat"),
         lambda text: abs(len(text) - LIST_CHARS) < 5),
    Kind("echo_room", "echo, in a room", None, _room(scene.ECHO_ROOM, lambda i: f"!echo {i}"),
         lambda s: body_from(s, f"{scene.ECHO_ROOM}/Echo", bare=False, kind="groupchat"),
         lambda text: text.isdigit()),
    Kind("list", "direct `list` (100 add-ins)", "echo_dm", _dm(BOT_JID, lambda i: "list"),
         lambda s: body_from(s, BOT_JID, bare=True, kind="chat"),
         lambda text: scene.addin_name(0) in text),
    Kind("room_show", "room `!addin`", "echo_room", _room(scene.CMD_ROOM, lambda i: "!addin"),
         lambda s: body_from(s, f"{scene.CMD_ROOM}/{scene.BOT_NICK}", bare=False,
                             kind="groupchat"),
         lambda text: text.startswith("This room's add-in is “")),
    Kind("attach", "direct `attach`", "echo_dm", _dm(BOT_JID, _attach_body),
         lambda s: body_from(s, BOT_JID, bare=True, kind="chat"),
         lambda text: "now has the add-in" in text),
)


async def sample(client: RawClient, kind: Kind, index: int) -> float:
    """One round trip, in milliseconds (from just before the write to the answer's arrival)."""
    answer = client.expect(kind.reply)
    sent = kind.send(client, index)
    stanza, arrived = await asyncio.wait_for(answer, TIMEOUT_S)
    text = stanza.findtext(BODY) or ""
    if not kind.check(text):
        raise AssertionError(f"{kind.key}: unexpected answer {text[:200]!r}")
    return (arrived - sent) * 1000


async def run(client: RawClient, samples: int, warmup: int, block: int) -> dict[str, Any]:
    """Every kind ``samples`` times after ``warmup``, in interleaved blocks of ``block``."""
    counters = {kind.key: itertools.count() for kind in KINDS}  # attach alternates by it
    for kind in KINDS:
        for _ in range(warmup):
            await sample(client, kind, next(counters[kind.key]))
    times: dict[str, list[float]] = {kind.key: [] for kind in KINDS}
    while any(len(v) < samples for v in times.values()):
        for kind in KINDS:
            todo = min(block, samples - len(times[kind.key]))
            for _ in range(todo):
                times[kind.key].append(await sample(client, kind, next(counters[kind.key])))
    return {
        "samples_ms": times,
        "kinds": {k.key: {"label": k.label, "baseline": k.baseline} for k in KINDS},
    }
