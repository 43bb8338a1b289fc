"""Invitations to rooms (XEP-0249 direct, XEP-0045 §7.8.2 mediated): accept or decline.

An invitation to a room in a served pool that exists is accepted when the inviter is an
admin — by the real JID the server vouches for (a direct invitation) or the room itself
reports (a mediated one) — or when the bot, having joined to look, sees the inviter in the
room as one of its owners or admins (the same test as a manager's direct-message
`attach`). The bot then serves the room and remembers it, exactly as after an admin's
`join`; the audit log records the inviter via "invite", and the inviter is thanked by a
direct message. Anything else is declined with the reason, saying what a room's owner can
do where something can be done.

Anyone but an admin is bounded (issue 12, finding 3): the app counts their invitations
against the per-sender rate limit (bot.app); here, a look (a join made only to see who
invited) is made at most `invitations.per_inviter` times per inviter and `invitations.total`
times for everyone in `invitations.window_s`, and at most once per room in
`invitations.room_cooldown_s`. Over a per-inviter limit the inviter is told once, then
nothing. Only a decline after a look (the room's occupants saw the bot come and go) is
recorded in the audit log ("invite-declined"); the others are counted (bot.metrics) and
logged as one line per burst.

Plain values in, Transport calls out: the XMPP edge parses the stanzas and sends declines.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from bot import addins, names, policy
from bot.commands import text
from bot.config import Settings
from bot.errors import CommandError
from bot.i18n import msg, tr
from bot.limits import RateLimit, Verdict
from bot.metrics import METRICS
from bot.rooms import Rooms
from bot.values import Actor, Change, Transport
from bot.wording import plural
from store import Store

log = logging.getLogger(__name__)

LOOK_TIMEOUT_S = 20.0  # for the room to let the bot in when it joins to look
MAX_LOOKS = 4  # rooms joined at once only to check an inviter
DECLINED = "invite-declined"
BURST_S = 5.0  # declines without a look within this of the first are logged as one line
MOST_REMEMBERED_LOOKS = 10_000  # rooms whose last look is kept for the cool-down


@dataclass(frozen=True)
class Invitation:
    room: str  # as the invitation names it: not yet checked
    inviter: str | None  # the real bare JID vouched for; None when nobody vouches for one
    sender: str  # who delivered it (for the audit log when the inviter is unknown)
    mediated: bool
    room_exists: bool | None = None  # None: not asked (a mediated invitation comes from it)
    reason: str = ""
    lang: str | None = None  # its xml:lang: the inviter's language (thanks, declines)


# Tells the inviter why, the way the invitation came (a Msg: in the inviter's language).
Decline = Callable[[str], None]


@dataclass
class _Look:
    invitation: Invitation
    decline: Decline
    nick: str
    timer: asyncio.TimerHandle


class _Burst:
    """Declines made without a look, logged as one line per burst: the first's room,
    sender and reason, and how many more came within BURST_S from how many senders."""

    def __init__(self) -> None:
        self.count = 0
        self.senders: set[str] = set()
        self.first: tuple[str, str, str] = ("", "", "")
        self.started = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def add(self, room: str, sender: str, reason: str) -> None:
        if self.count == 0:
            loop = asyncio.get_running_loop()
            self.first, self.started = (room[:200], sender[:200], reason), loop.time()
            self.timer = loop.call_later(BURST_S, self.flush)
        self.count += 1
        self.senders.add(sender.partition("/")[0])

    def flush(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        room, sender, reason = self.first
        if self.count == 1:
            log.info("invitation to %s from %s declined: %s", room, sender, reason)
        elif self.count > 1:
            took = asyncio.get_running_loop().time() - self.started
            log.info(
                "%d invitations declined in %.1f s from %s; the first, to %s from %s: %s",
                self.count, took, plural(len(self.senders), "sender"), room, sender, reason,
            )
        self.count = 0
        self.senders = set()


class Invitations:
    """The invitations being decided; lives in the bot (bot.app.App)."""

    def __init__(
        self, settings: Settings, store: Store, rooms: Rooms, transport: Transport, *,
        nick: Callable[[], str], serving: Callable[[str], bool],
        keep: Callable[[str, bool], None], spawn: Callable[[Coroutine[Any, Any, None]], None],
        changed: Callable[[Sequence[Change]], None],
        exists: Callable[[str], Awaitable[bool | None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
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
        self.exists = exists or transport.room_exists  # asks the room (disco#info)
        self.clock = clock
        self.looking: dict[str, _Look] = {}
        limits = settings.invitations
        self.per_inviter = RateLimit(limits.per_inviter, limits.window_s, clock)
        self.total = RateLimit(limits.total, limits.window_s, clock)
        self.looked: dict[str, float] = {}  # room: when the bot last joined it to look
        self.burst = _Burst()

    def receive(self, invitation: Invitation, decline: Decline) -> None:
        """An invitation (already within the sender's rate limit: bot.app)."""
        try:
            room = names.resolve_room(self.settings.pools.names, invitation.room)
        except CommandError as exc:
            self._refuse(invitation, decline, exc.message)
            return
        if self.serving(room):
            log.info("invitation to %s from %s: already there", room, invitation.sender)
            METRICS.invitation("dropped")
            return
        admin = policy.accept_outright(self.settings.roles.admins, self._check(room, invitation))
        if not admin:
            refusal = self._before_asking(room, invitation)
            if refusal is not None:
                self._refuse(invitation, decline, refusal)
                return
        if invitation.mediated or invitation.room_exists is not None:
            self._decide(room, invitation, decline)
        else:  # a direct invitation names any room: ask it whether it exists at all
            self.spawn(self._ask_then_decide(room, invitation, decline))

    async def _ask_then_decide(self, room: str, invitation: Invitation, decline: Decline) -> None:
        try:
            exists = await self.exists(room)
        except ValueError:  # the edge would address another room: nothing was sent
            self._refuse(invitation, decline, msg("that is not a room address the bot accepts."))
            return
        self._decide(room, dataclasses.replace(invitation, room_exists=exists), decline)

    def _check(self, room: str, invitation: Invitation) -> policy.InvitationCheck:
        return policy.InvitationCheck(
            invitation.inviter, room, invitation.mediated, invitation.room_exists
        )

    def _before_asking(self, room: str, invitation: Invitation) -> str | None:
        """Why anyone's but an admin's invitation is declined before the room is asked
        anything: nobody vouched for the inviter, or the room was looked at a moment ago."""
        if invitation.inviter is None:
            return policy.look_refusal(self._check(room, invitation))
        cooldown = self.settings.invitations.room_cooldown_s
        last = self.looked.get(room)
        if last is not None and (ago := self.clock() - last) < cooldown:
            return text.invitation_cooling(room, ago, cooldown)
        return None

    def _decide(self, room: str, invitation: Invitation, decline: Decline) -> None:
        if self.serving(room):
            METRICS.invitation("dropped")
            return
        check = self._check(room, invitation)
        if policy.accept_outright(self.settings.roles.admins, check):
            missing = policy.existence_refusal(check)
            if missing is not None:  # nothing is remembered, nothing tried again
                self._refuse(invitation, decline, missing)
                return
            look = self.looking.pop(room, None)
            if look is not None:  # someone else's invitation is being checked: no need now
                look.timer.cancel()
                self.keep(room, True)
            self.spawn(self._accept(room, invitation, decline, looked=look is not None))
            return
        if room in self.looking:
            METRICS.invitation("dropped")
            return  # already looking at it
        refusal = policy.look_refusal(check) or self._before_asking(room, invitation)
        if refusal is None and len(self.looking) >= MAX_LOOKS:
            refusal = msg("the bot is busy checking other invitations; try again in a minute.")
        if refusal is None:
            refusal = self._over_limits(invitation.inviter or invitation.sender)
            if refusal == "":
                METRICS.invitation("dropped")  # the inviter was told of the limit already
                return
        if refusal is not None:
            self._refuse(invitation, decline, refusal)
            return
        self._look(room, invitation, decline)

    def _over_limits(self, inviter: str) -> str | None:
        """None while a look is within the invitation limits (and counts it); the refusal
        otherwise; "" when the inviter has been told already."""
        limits = self.settings.invitations
        verdict = self.per_inviter.check(inviter)
        if verdict is Verdict.NOTICE:
            wait = self.per_inviter.retry_after(inviter)
            return text.invitations_too_many(limits.per_inviter, limits.window_s, wait)
        if verdict is Verdict.SILENT:
            return ""
        if self.total.check("") is not Verdict.ALLOW:
            wait = self.total.retry_after("")
            return text.invitations_all_busy(limits.total, limits.window_s, wait)
        return None

    def _look(self, room: str, invitation: Invitation, decline: Decline) -> None:
        nick = self.nick()
        timer = asyncio.get_running_loop().call_later(LOOK_TIMEOUT_S, self._timed_out, room)
        self.looking[room] = _Look(invitation, decline, nick, timer)
        self._remember_look(room)
        log.info("invited to %s by %s: joining to check", room, invitation.inviter)
        self.rooms.joining(room, nick)
        try:
            self.transport.join(room, nick)
        except ValueError:  # the edge would address another room: nothing was sent
            self.looking.pop(room).timer.cancel()
            self.rooms.forget(room)
            self._refuse(invitation, decline, msg("that is not a room address the bot accepts."))

    def _remember_look(self, room: str) -> None:
        now = self.clock()
        if len(self.looked) >= MOST_REMEMBERED_LOOKS:
            cooldown = self.settings.invitations.room_cooldown_s
            self.looked = {r: t for r, t in self.looked.items() if now - t < cooldown}
        self.looked[room] = now

    # --- the room's answer to a join made to look -------------------------------------------

    def joined(self, room: str) -> None:
        look = self.looking.pop(room, None)
        if look is None:
            return
        look.timer.cancel()
        inviter = look.invitation.inviter
        assert inviter is not None  # noqa: S101 - nobody's invitation is not looked at
        view = self.rooms.state(room)
        refusal = policy.invitation_refusal(room, view, inviter, self.rooms.named(room))
        if refusal is None:
            self.keep(room, True)
            self.spawn(self._accept(room, look.invitation, look.decline, looked=True))
            return
        if view is not None and view.joined and not view.shows_jids:
            refusal = text.invitation_hidden_jids(room)  # what its owner can do about it
        self._leave(room, look.nick)
        self._decline(look.invitation, room, look.decline, refusal)

    def gone(self, room: str, why: str) -> None:
        look = self.looking.pop(room, None)
        if look is not None:
            look.timer.cancel()
            self._decline(look.invitation, room, look.decline,
                          msg("the bot could not stay: {why}.", why=why))

    def join_failed(self, room: str, condition: str) -> None:
        look = self.looking.pop(room, None)
        if look is not None:
            look.timer.cancel()
            self._decline(
                look.invitation, room, look.decline, text.invitation_room_refused(room, condition)
            )

    def _timed_out(self, room: str) -> None:
        look = self.looking.pop(room, None)
        if look is not None:
            self._leave(room, look.nick)
            self._decline(look.invitation, room, look.decline,
                          msg("the room did not let the bot in."))

    def stop(self) -> None:
        for look in self.looking.values():
            look.timer.cancel()
        self.looking.clear()
        self.burst.flush()

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
            decline(exc.message)
            METRICS.invitation("declined")
            return
        log.info("invited to %s by %s: accepted", room, invitation.inviter)
        METRICS.invitation("accepted")
        thanks = text.invitation_accepted(room, tr(invitation.lang))  # the invitation's language
        self.transport.send_direct(invitation.inviter, thanks)
        self.changed(done.changes)

    def _leave(self, room: str, nick: str | None) -> None:
        self.rooms.forget(room)
        if nick is not None:
            self.transport.leave(room, nick)

    def _refuse(self, invitation: Invitation, decline: Decline, reason: str) -> None:
        """Declined without a look: said to the inviter, counted, logged once per burst;
        no audit row (a flood of them would push everything else out of `audit`)."""
        decline(reason)
        METRICS.invitation("declined")
        self.burst.add(invitation.room, invitation.sender, reason)

    def _decline(
        self, invitation: Invitation, room: str, decline: Decline, reason: str
    ) -> None:
        """Declined after a look (the room saw the bot come, and go): recorded."""
        log.info("invitation to %s from %s declined: %s", room, invitation.sender, reason)
        decline(reason)
        METRICS.invitation("declined_after_look")
        who = invitation.inviter or invitation.sender
        self.spawn(self._record(Actor(who[:3071], "invite"), room, reason))

    async def _record(self, actor: Actor, room: str | None, detail: str) -> None:
        try:
            done = await self.store.run(
                addins.record, self.store, actor, DECLINED, room=room, detail=detail
            )
        except CommandError as exc:
            log.warning("could not record a declined invitation: %s", exc)
            return
        self.changed(done.changes)
