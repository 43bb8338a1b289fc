"""Invitations to rooms (XEP-0249 direct, XEP-0045 §7.8.2 mediated): accept or decline.

An invitation to a room in a served pool is accepted when the inviter is an admin — by the
real JID the server vouches for (a direct invitation) or the room itself reports (a
mediated one) — or when the bot, having joined to look, sees the inviter in the room as
one of its owners or admins (the same test as a manager's direct-message `attach`). The
bot then serves the room and remembers it, exactly as after an admin's `join`; the audit
log records the inviter via "invite". Anything else is declined with the reason (and the
bot leaves, if it had joined to look); the refusal is recorded too ("invite-declined").

Plain values in, Transport calls out: the XMPP edge parses the stanzas and sends declines.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from bot import addins, names, policy
from bot.config import Settings
from bot.errors import CommandError
from bot.rooms import Rooms
from bot.values import Actor, Change, Transport
from store import Store

log = logging.getLogger(__name__)

LOOK_TIMEOUT_S = 20.0  # for the room to let the bot in when it joins to look
MAX_LOOKS = 4  # rooms joined at once only to check an inviter
DECLINED = "invite-declined"


@dataclass(frozen=True)
class Invitation:
    room: str  # as the invitation names it: not yet checked
    inviter: str | None  # the real bare JID vouched for; None when nobody vouches for one
    sender: str  # who delivered it (for the audit log when the inviter is unknown)
    mediated: bool
    room_exists: bool | None = None  # None: not asked (a mediated invitation comes from it)
    reason: str = ""


Decline = Callable[[str], None]  # tells the inviter why, the way the invitation came


@dataclass
class _Look:
    invitation: Invitation
    decline: Decline
    nick: str
    timer: asyncio.TimerHandle


class Invitations:
    """The invitations being decided; lives in the bot (bot.app.App)."""

    def __init__(
        self, settings: Settings, store: Store, rooms: Rooms, transport: Transport, *,
        nick: Callable[[], str], serving: Callable[[str], bool],
        keep: Callable[[str, bool], None], spawn: Callable[[Coroutine[Any, Any, None]], None],
        changed: Callable[[Sequence[Change]], None],
    ) -> None:
        self.settings = settings
        self.store = store
        self.rooms = rooms
        self.transport = transport
        self.nick = nick  # the nickname to join with
        self.serving = serving  # is the bot meant to be in this room already?
        self.keep = keep  # (room, True): the bot is in it and now serves it, do not rejoin
        self.spawn = spawn
        self.changed = changed  # on the loop: changes committed here, for the announcer
        self.looking: dict[str, _Look] = {}

    def receive(self, invitation: Invitation, decline: Decline) -> None:
        try:
            room = names.resolve_room(self.settings.pools.names, invitation.room)
        except CommandError as exc:
            self._decline(invitation, None, decline, exc.reason)
            return
        if self.serving(room):
            log.info("invitation to %s from %s: already there", room, invitation.sender)
            return
        check = policy.InvitationCheck(
            invitation.inviter, room, invitation.mediated, invitation.room_exists
        )
        if policy.accept_outright(self.settings.roles.admins, check):
            look = self.looking.pop(room, None)
            if look is not None:  # someone else's invitation is being checked: no need now
                look.timer.cancel()
                self.keep(room, True)
            self.spawn(self._accept(room, invitation, decline, looked=look is not None))
            return
        if room in self.looking:
            return  # already looking at it
        refusal = policy.look_refusal(check)
        if refusal is None and len(self.looking) >= MAX_LOOKS:
            refusal = "the bot is busy checking other invitations; try again in a minute."
        if refusal is not None:
            self._decline(invitation, room, decline, refusal)
            return
        nick = self.nick()
        timer = asyncio.get_running_loop().call_later(LOOK_TIMEOUT_S, self._timed_out, room)
        self.looking[room] = _Look(invitation, decline, nick, timer)
        log.info("invited to %s by %s: joining to check", room, invitation.inviter)
        self.rooms.joining(room, nick)
        try:
            self.transport.join(room, nick)
        except ValueError:  # the edge would address another room: nothing was sent
            self.looking.pop(room).timer.cancel()
            self.rooms.forget(room)
            self._decline(invitation, None, decline, "that is not a room address the bot accepts.")

    # --- the room's answer to a join made to look -------------------------------------------

    def joined(self, room: str) -> None:
        look = self.looking.pop(room, None)
        if look is None:
            return
        look.timer.cancel()
        inviter = look.invitation.inviter
        assert inviter is not None  # noqa: S101 - nobody's invitation is not looked at
        refusal = policy.invitation_refusal(
            room, self.rooms.state(room), inviter, self.rooms.named(room)
        )
        if refusal is None:
            self.keep(room, True)
            self.spawn(self._accept(room, look.invitation, look.decline, looked=True))
            return
        self._leave(room, look.nick)
        self._decline(look.invitation, room, look.decline, refusal)

    def gone(self, room: str, why: str) -> None:
        look = self.looking.pop(room, None)
        if look is not None:
            look.timer.cancel()
            self._decline(look.invitation, room, look.decline, f"the bot could not stay: {why}.")

    def join_failed(self, room: str, condition: str) -> None:
        look = self.looking.pop(room, None)
        if look is not None:
            look.timer.cancel()
            self._decline(
                look.invitation, room, look.decline, f"the room refused the bot ({condition})."
            )

    def _timed_out(self, room: str) -> None:
        look = self.looking.pop(room, None)
        if look is not None:
            self._leave(room, look.nick)
            self._decline(look.invitation, room, look.decline, "the room did not let the bot in.")

    def stop(self) -> None:
        for look in self.looking.values():
            look.timer.cancel()
        self.looking.clear()

    # --- outcomes --------------------------------------------------------------------------

    async def _accept(
        self, room: str, invitation: Invitation, decline: Decline, *, looked: bool
    ) -> None:
        assert invitation.inviter is not None  # noqa: S101 - an admin, or seen managing the room
        actor = Actor(invitation.inviter, "invite")
        try:
            done = await self.store.run(
                addins.set_joined, self.store, actor, room=room, joined=True
            )
        except CommandError as exc:  # the database is away: nothing was remembered
            if looked:
                self.keep(room, False)
                self._leave(room, self.rooms.nick_in(room))
            decline(exc.reason)
            return
        log.info("invited to %s by %s: accepted", room, invitation.inviter)
        self.changed(done.changes)

    def _leave(self, room: str, nick: str | None) -> None:
        self.rooms.forget(room)
        if nick is not None:
            self.transport.leave(room, nick)

    def _decline(
        self, invitation: Invitation, room: str | None, decline: Decline, reason: str
    ) -> None:
        log.info("invitation to %s from %s declined: %s", invitation.room[:200],
                 invitation.sender, reason)
        decline(reason)
        detail = reason if room is not None else f"{invitation.room[:200]}: {reason}"
        who = invitation.inviter or invitation.sender
        self.spawn(self._record(Actor(who[:3071], "invite"), room, detail))

    async def _record(self, actor: Actor, room: str | None, detail: str) -> None:
        try:
            done = await self.store.run(
                addins.record, self.store, actor, DECLINED, room=room, detail=detail
            )
        except CommandError as exc:
            log.warning("could not record a declined invitation: %s", exc)
            return
        self.changed(done.changes)
