"""The bot itself: routes inbound messages to commands (within the rate limits, one sender's
in order), presence to the room tracker, the announcer, invitations and the rooms it serves
(bot.membership). No slixmpp here: the edge hands over plain values and carries out the
Transport calls.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bot import i18n, policy
from bot.announce import Announcer
from bot.cluster import Cluster
from bot.commands import text
from bot.commands.direct import DIRECT
from bot.commands.grammar import split_words, strip_direct_prefix, strip_room_prefix
from bot.commands.registry import Dispatcher
from bot.commands.room import ROOM
from bot.config import Settings
from bot.errors import CommandError
from bot.i18n import Tr
from bot.invitations import Decline, Invitation, Invitations
from bot.limits import RateLimit, Verdict
from bot.membership import Membership
from bot.metrics import METRICS
from bot.rooms import (
    CONFIG_CHANGED,
    NOW_FULLY_ANONYMOUS,
    NOW_NON_ANONYMOUS,
    NOW_SEMI_ANONYMOUS,
    Arrival,
    Created,
    Exit,
    Gone,
    Joined,
    Promoted,
    Rooms,
)
from bot.values import (
    Change,
    Kind,
    Message,
    Place,
    Presence,
    Reply,
    Sender,
    Subject,
    Transport,
)
from bot.wording import cut
from store import Store

log = logging.getLogger(__name__)

# Stop trying for good on these; a kick or a vanished stream is retried.
FINAL_EXITS = frozenset({Exit.BANNED, Exit.DESTROYED, Exit.REMOVED})
ANONYMITY_CHANGED = frozenset({NOW_NON_ANONYMOUS, NOW_SEMI_ANONYMOUS, NOW_FULLY_ANONYMOUS})
FINAL_JOIN_ERRORS = frozenset(
    {"forbidden", "registration-required", "not-authorized", "item-not-found"}
)


@dataclass(frozen=True)
class _Command:
    message: Message
    place: Place
    sender: Sender
    text: str
    person: str  # who, for limits and ordering: a real JID, an occupant id, or a nickname
    tr: i18n.Tr  # the language of the answer


class App:
    def __init__(
        self, settings: Settings, store: Store, transport: Transport, *, me: str = "",
        on_desk: Callable[[bool], None] = lambda _desk: None,
    ) -> None:
        """`me`: this process's id among several on one database (cluster.enabled);
        `on_desk`: told whether this process answers what is sent to the bot's bare JID."""
        assert settings.xmpp is not None  # noqa: S101 - checked before the bot is built
        self.settings = settings
        self.store = store
        self.transport = transport
        self.nick = settings.xmpp.nick
        self.rooms = Rooms()
        self.dispatcher = Dispatcher(
            settings, store, self.rooms, {Place.DIRECT: DIRECT, Place.ROOM: ROOM},
            changed=lambda changes: self.announcer.handed(changes),  # said after the reply
            exists=self.room_exists, relay=self._relay,
            served_here=lambda room: self.cluster is None or room in self.membership.wanted,
            learn_config=self.learn_config, elsewhere=self.managed_elsewhere,
        )
        # Room messages and joiners' links: the rooms' language (rooms.lang).
        i18n.load_all()
        self.room_tr = i18n.tr(settings.rooms.lang)
        self.announcer = Announcer(
            store, transport, self.rooms, cooldown_s=settings.announce.cooldown_s,
            tr=self.room_tr, pin=settings.announce.pin, learn_config=self.learn_config,
            on_membership=lambda change: self.membership.follow(change),
            on_changes=self.dispatcher.answers.changed,
            shared=settings.cluster.enabled, own_jid=settings.xmpp.jid,
            announces=lambda room, change: self.membership.announces(room, change) and (
                self.cluster is None or self.cluster.vouched()),
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self.cluster: Cluster | None = None
        if settings.cluster.enabled:
            self.cluster = Cluster(
                settings, store, me=me, on_desk=on_desk,
                serve=lambda rooms, fresh, since: self.membership.serve(rooms, fresh, since),
            )
        self.membership = Membership(
            settings, store, self.rooms, transport, spawn=self._spawn, changed=self.changed,
            leased=self.cluster is not None,
            poke_leases=self.cluster.poke if self.cluster is not None else lambda: None,
        )
        self._senders: dict[str, tuple[asyncio.Lock, int]] = {}  # lock, commands waiting
        self._managed_asks: dict[str, asyncio.Future[dict[str, bool]]] = {}  # by person
        limits = settings.limits
        self.sender_limit = RateLimit(limits.sender, limits.window_s)
        self.room_limit = RateLimit(limits.room, limits.window_s)
        self.invitations = Invitations(
            settings, store, self.rooms, transport, nick=lambda: self.nick,
            serving=lambda room: room in self.membership.wanted, keep=self.membership.keep,
            spawn=self._spawn, changed=self.changed, exists=self.room_exists,
        )

    async def start(self) -> None:
        await self.announcer.start()
        if self.cluster is not None:
            await self.cluster.start()

    async def stop(self) -> None:
        self.invitations.stop()
        self.membership.leave_all()
        if self.cluster is not None:
            await self.cluster.stop()
        await self.announcer.stop()
        for task in list(self._tasks):
            task.cancel()

    # --- from the edge ---------------------------------------------------------------------

    def own_nick(self, room: str) -> str | None:
        return self.rooms.nick_in(room)

    def on_message(self, message: Message) -> None:
        """Decide at once (on the loop) whether this is a command and whether it is within
        the limits; the command itself runs as a task."""
        if self.cluster is not None and not self.cluster.vouched():
            return  # several processes: this one's leases have run out, or are running out
        command = self._recognise(message)
        if command is None or not self._within_limits(command):
            return
        if self._answer_now(command):
            return
        self._spawn(self._in_order(command))

    def on_presence(self, presence: Presence) -> None:
        for change in self.rooms.update(presence):
            if isinstance(change, Arrival):
                if self.cluster is None or self.cluster.vouched():
                    self._spawn(self.announcer.arrival(change))
            elif isinstance(change, Joined):
                taken_over = self.membership.joined(change.room)
                if self.cluster is not None:
                    self._spawn(self.announcer.present(change.room, tell=taken_over))
                self.invitations.joined(change.room)
            elif isinstance(change, Created):
                self.invitations.gone(change.room, "the room does not exist")
                self.membership.created(change.room)
            elif isinstance(change, Gone):
                self.invitations.gone(change.room, change.why.value)
                why, final = change.why.value, change.why in FINAL_EXITS
                self.membership.gone(change.room, why, final=final)
            elif isinstance(change, Promoted):  # ask for the occupants again, JIDs and all
                self.transport.join(change.room, presence.nick)

    def on_sibling(self, resource: str, available: bool) -> None:
        if self.cluster is not None:
            self.cluster.sibling(resource, available)

    def on_link(self, up: bool) -> None:
        """The connection to the server is up (a new session, or one resumed) or down (even
        if it may yet be resumed): several processes hand this one's rooms to the others."""
        if self.cluster is not None:
            self.cluster.set_online(up)

    def on_join_error(self, room: str, condition: str) -> None:
        self.rooms.forget(room)
        self.invitations.join_failed(room, condition)
        self.membership.join_refused(room, condition, final=condition in FINAL_JOIN_ERRORS)

    def on_online(self) -> None:
        self.membership.online = True
        self._spawn(self.membership.join_all())

    def on_offline(self) -> None:
        self.membership.online = False
        self.rooms.clear()  # the server forgot us; every room is joined anew on reconnect
        self.invitations.stop()  # rooms joined only to look at them are forgotten too

    def live_rooms(self) -> list[tuple[str, str]]:
        return [(state.jid, state.nick) for state in self.rooms.rooms.values() if state.joined]

    def on_room_dropped(self, room: str, nick: str) -> None:
        """A self-ping found the bot gone from `room` though no one told it: rejoin."""
        if not self.rooms.is_live(room) or self.rooms.nick_in(room) != nick:
            return  # left, or rejoined, since the ping went out
        self.rooms.forget(room)
        self.invitations.gone(room, "the room dropped the bot")
        self.membership.gone(room, "dropped by the room without a word", final=False)

    def on_room_status(self, room: str, codes: frozenset[int]) -> None:
        """The room changed whom it shows real JIDs to: join again, so that the room sends
        its occupants afresh as it now shows them (nobody present is told anything)."""
        wanted = room in self.membership.wanted
        if CONFIG_CHANGED in codes:  # asked again when next needed (learn_config)
            self.rooms.subject_config.pop(room, None)
        if codes & ANONYMITY_CHANGED and wanted and self.rooms.is_live(room):
            log.info("%s changed its anonymity (status %s); refreshing its occupants",
                     room, ", ".join(map(str, sorted(codes))))
            self.membership.join(room)

    def on_subject(self, subject: Subject) -> None:
        """The room's subject: learnt (on joining, from history, or the bot's own), or a
        change by someone else, after which the subject pin re-applies its tail once."""
        state = self.rooms.state(subject.room)
        if state is None or not state.joined:
            return
        first = state.subject is None
        state.subject = subject.text
        if first or subject.delayed or subject.nick == state.nick:
            return  # the subject as it stands (on joining, from history), or our own: learnt
        self.announcer.subject_changed(subject.room, subject.text)

    def on_room_config(self, room: str, subject_open: bool | None) -> None:
        self.rooms.subject_config[room] = subject_open

    def on_invitation(self, invitation: Invitation, decline: Decline) -> None:
        """Anyone's but an admin's invitations count against the sender's rate limit, as
        commands do (one window for both): over it, the sender is told once, then nothing."""
        if policy.held_to_invitation_limits(self.settings.roles.admins, invitation.inviter):
            who = (invitation.inviter or invitation.sender.partition("/")[0]).lower()
            key = f"None|{who}"  # the key of the same sender's direct commands (_order_key)
            verdict = self.sender_limit.check(key)
            if verdict is Verdict.NOTICE:
                limit = self.sender_limit
                decline(text.invitations_too_fast(
                    limit.count, limit.window_s, limit.retry_after(key)
                ))
                METRICS.invitation("declined")
                return
            if verdict is Verdict.SILENT:
                METRICS.invitation("dropped")
                return
        self.invitations.receive(invitation, decline)

    async def learn_config(self, room: str) -> None:
        """Where the subject pin must know whether `room` lets its occupants change the
        subject (the bot is in it, no moderator, and has not asked since the room's
        configuration last changed), ask it; the answer comes back by on_room_config. Asked
        only when needed: asked of every room joined, the question doubled the server's
        work at start-up and at a take-over, for rooms most of which have no pin."""
        if (not self.rooms.is_live(room) or self.rooms.own_role(room) == "moderator"
                or room in self.rooms.subject_config):
            return
        await self.transport.room_exists(room)  # one that does not answer is left unknown

    async def room_exists(self, room: str) -> bool | None:
        """Ask the room whether it exists (for chat, forms and invitations); a yes is kept a
        moment, so that the join which follows an admin's `join` or an invitation does not
        ask again."""
        exists = await self.transport.room_exists(room)
        if exists is True:
            self.membership.found(room)
        return exists

    def changed(self, changes: Sequence[Change] = ()) -> None:
        """On the loop: changes made outside chat (Control Panel, invitations): say them now."""
        self.announcer.handed(changes)
        self.announcer.poke()

    # --- commands --------------------------------------------------------------------------

    def _recognise(self, message: Message) -> _Command | None:
        if message.kind is Kind.DIRECT:
            assert message.jid is not None  # noqa: S101 - the edge sets it for direct messages
            text = strip_direct_prefix(message.body)
            # A direct message is answered in its sender's language (xml:lang), else English.
            tr = i18n.tr(message.lang)
            sender = Sender(message.jid, person=f"jid:{message.jid}")
            return _Command(message, Place.DIRECT, sender, text, message.jid, tr)
        room, nick = message.room, message.nick
        if room is None or nick is None or not self.rooms.is_live(room):
            return None  # not before our own join has completed
        occupant = self.rooms.occupant(room, nick)
        person = occupant.person if occupant else f"nick:{nick}"
        if message.kind is Kind.ROOM_PRIVATE:
            # A private message through a room proves only a nickname (and the occupant the
            # room says holds it: what `mute` keeps).
            text = strip_direct_prefix(message.body)
            tr = i18n.tr(message.lang) if message.lang else self.room_tr
            sender = Sender(None, room, nick, person)
            return _Command(message, Place.ROOM, sender, text, person, tr)
        said = strip_room_prefix(message.body, self.rooms.nick_in(room) or self.nick)
        if said is None:
            return None  # ordinary conversation
        # A room vouches for an occupant's real JID only where it shows it to the bot.
        sender = Sender(occupant.jid if occupant else None, room, nick, person)
        return _Command(message, Place.ROOM, sender, said, person, self.room_tr)

    def _within_limits(self, command: _Command) -> bool:
        checks = []
        if policy.held_to_sender_limit(self.settings.roles.admins, command.sender):
            checks.append((self.sender_limit, self._order_key(command),
                           command.tr.gettext("from you")))
        if command.sender.room is not None:
            checks.append((self.room_limit, command.sender.room,
                           command.tr.gettext("in this room")))
        for limit, key, whose in checks:
            verdict = limit.check(key)
            if verdict is Verdict.ALLOW:
                continue
            if verdict is Verdict.NOTICE:
                wait = max(1, math.ceil(limit.retry_after(key)))
                window = f"{limit.window_s:g}"
                self._reply(command, Reply(command.tr.gettext(
                    "Too many commands {whose}: at most {count} every {window} s. This one "
                    "was not run, nor will any sent in the next {wait} s be; the bot says "
                    "nothing more until then.",
                    whose=whose, count=limit.count, window=window, wait=wait,
                )))
            return False
        return True

    def _answer_now(self, command: _Command) -> bool:
        """Answer from the kept answers (bot/commands/answers.py), without a task or a
        database thread — unless the sender has a command still running, which answers
        first."""
        if command.message.kind is Kind.ROOM_PRIVATE or self._order_key(command) in self._senders:
            return False
        reply = self.dispatcher.kept(command.place, command.sender, command.text, command.tr)
        if reply is None:
            return False
        self._reply(command, reply)
        return True

    @staticmethod
    def _order_key(command: _Command) -> str:
        return f"{command.sender.room}|{command.person}"

    async def _in_order(self, command: _Command) -> None:
        # One sender's commands run in the order they were sent; different senders in parallel.
        key = self._order_key(command)
        lock, waiting = self._senders.get(key, (asyncio.Lock(), 0))
        self._senders[key] = (lock, waiting + 1)
        try:
            async with lock:
                reply = await self._run(command)
                if reply is not None:
                    self._reply(command, reply)
        finally:
            lock, waiting = self._senders[key]
            if waiting == 1:
                del self._senders[key]
            else:
                self._senders[key] = (lock, waiting - 1)
            self.announcer.poke()

    async def _run(self, command: _Command) -> Reply | None:
        if command.message.kind is Kind.ROOM_PRIVATE:
            refusal = self._direct_only(command.text)
            if refusal is not None:
                METRICS.refused(command.place.name, "direct_only")
                return Reply(command.tr.say(refusal))
        return await self.dispatcher.run(
            command.place, command.sender, command.text, command.tr,
            may_relay=not command.message.relayed,
        )

    async def _relay(self, room: str, sender: Sender, text: str, tr: Tr) -> bool:
        """Several processes: hand a manager's direct command about `room` to the process
        serving it (only it sees the room's occupants); it answers. False if none does."""
        if self.cluster is None or sender.jid is None:
            return False
        holder = await self.cluster.holder(room)
        if holder is None or holder == self.cluster.me:
            return False
        self.transport.relay(holder, sender.jid, text, tr.lang)
        return True

    def managed_here(self, jid: str) -> dict[str, bool]:
        """Several processes: the rooms this one serves now (vouched for) in which the real
        JID `jid` is seen managing, each with whether it is seen owning it (what another
        process asks before listing or running a manager's form)."""
        if self.cluster is None or not self.cluster.vouched():
            return {}
        served = self.cluster.rooms
        views = {room: view for room, view in self.rooms.rooms.items() if room in served}
        named = {room: jids for room, jids in self.rooms.named_managers.items() if room in served}
        owned = set(policy.owned_rooms(views, jid))
        return {room: room in owned for room in policy.managed_rooms(views, jid, named)}

    async def managed_elsewhere(self, jid: str) -> dict[str, bool]:
        """Several processes: the rooms the other processes serve that the real JID `jid`
        manages, as each vouches for them when asked (room → seen owning it): what a form
        lists and a direct message's help says. All are asked at once, each for a few
        seconds; one that does not answer vouches for nothing. Asked once for all who ask
        about `jid` meanwhile (a client's discovery and its first step come together)."""
        if self.cluster is None:
            return {}
        asking = self._managed_asks.get(jid)
        if asking is None:
            asking = asyncio.ensure_future(self._ask_managed(jid))
            self._managed_asks[jid] = asking
            asking.add_done_callback(lambda _done: self._managed_asks.pop(jid, None))
        return dict(await asyncio.shield(asking))

    async def _ask_managed(self, jid: str) -> dict[str, bool]:
        assert self.cluster is not None  # noqa: S101 - managed_elsewhere checked
        others = sorted(await self.cluster.others())
        answers = await asyncio.gather(*(self.transport.ask_managed(p, jid) for p in others))
        return {room: owner for answer in answers for room, owner in answer.items()}

    async def served_elsewhere(self, room: str) -> bool:
        """Several processes: another one serves `room` now."""
        if self.cluster is None or room in self.membership.wanted:
            return False
        return await self.cluster.holder(room) not in (None, self.cluster.me)

    def _reply(self, command: _Command, reply: Reply) -> None:
        sender = command.sender
        reply = replace(reply, text=cut(reply.text, self.settings.limits.reply_chars, command.tr))
        if sender.room is None:
            assert sender.jid is not None  # noqa: S101 - direct messages come from a real JID
            self.transport.send_direct(sender.jid, reply.text)
        elif reply.public and command.message.kind is not Kind.ROOM_PRIVATE:
            # Asked privately, answered privately: only what was said in the room is public.
            self.transport.send_room(sender.room, reply.text, reply.link)
        else:
            assert sender.nick is not None  # noqa: S101 - room commands come from a nickname
            self.transport.send_private(sender.room, sender.nick, reply.text, reply.link)

    def _direct_only(self, text: str) -> str | None:
        try:
            words = split_words(text)
        except CommandError:
            return None  # the dispatcher gives the error
        name = words[0].lower() if words else ""
        return policy.direct_only_refusal(name, DIRECT.commands, ROOM.commands)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())
