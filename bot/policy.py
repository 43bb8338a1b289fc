"""Who may do what: every permission rule of the bot, defined once.

Plain functions over plain values — the sender as the server vouches for it, the admins of
the configuration, and what a room has told the bot of its occupants (bot.rooms). Chat
(bot.commands.registry), the forms (bot.xmpp.panel, bot.xmpp.adhoc), invitations
(bot.invitations) and the app's routing all ask here; nothing else decides. The tests of
this module (tests/unit/test_policy.py) are the permission table.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from bot.i18n import msg
from bot.values import Role, Sender

# The affiliations that make an occupant a manager of the room (XEP-0045 owner, admin).
MANAGING = frozenset({"owner", "admin"})


class Occupant(Protocol):
    """What a room reports of one occupant: its affiliation, and its real bare JID where
    the room shows it to the bot."""

    @property
    def affiliation(self) -> str: ...

    @property
    def jid(self) -> str | None: ...


class RoomView(Protocol):
    """What the bot knows of a room it is in (bot.rooms.RoomState)."""

    @property
    def joined(self) -> bool: ...

    @property
    def shows_jids(self) -> bool: ...

    @property
    def occupants(self) -> Mapping[str, Occupant]: ...


# --- admins --------------------------------------------------------------------------------


def is_admin(admins: Collection[str], jid: str | None) -> bool:
    """An admin is a bare JID of `roles.admins`, recognised only from a real JID the server
    (or the room, for an occupant) vouches for: never from a nickname."""
    return jid is not None and jid.lower() in admins


def held_to_sender_limit(admins: Collection[str], sender: Sender) -> bool:
    """The per-sender rate limit holds everyone but an admin writing directly (recognised
    by the real JID the server vouches for): an admin pasting a batch of commands is not
    silenced. (A room's limit, which protects the room, holds everyone in it.)"""
    return sender.room is not None or not is_admin(admins, sender.jid)


# --- room managers -------------------------------------------------------------------------


def manager_refusal(
    room: str, view: RoomView | None, sender: Sender, named: Collection[str] = frozenset()
) -> str | None:
    """None when `sender` manages `room`, else the sentence saying why not.

    A manager is an occupant whose affiliation is owner or admin, as the room reports it,
    or a JID the room's owners named (`named`), recognised only by a real JID someone
    vouches for: the occupant's JID as the room itself reports it, or the sender of a
    direct message as the server delivers it. A nickname proves nothing. In the room the
    sender is the occupant of that nickname, as the room reported it; elsewhere (a direct
    message, a form) the real JID must be seen among the room's occupants, which the room
    shows only if it is not anonymous to the bot, or be one of the named."""
    if sender.room is None and sender.jid is not None and sender.jid in named:
        return None  # a direct message: the server vouches for the named account
    if view is None or not view.joined:
        return msg("The bot is not in {room}, so it cannot see who manages it.", room=room)
    not_manager = msg("Only the owners and admins of {room} may do that.", room=room)
    if named:
        not_manager = msg(
            "Only the owners, admins and named managers of {room} may do that.", room=room
        )
    if sender.room == room and sender.nick is not None:
        occupant = view.occupants.get(sender.nick)
        if occupant is None:
            return not_manager
        if occupant.affiliation in MANAGING or (occupant.jid is not None and occupant.jid in named):
            return None
        if named and occupant.jid is None:
            return _hidden_named(room)
        return not_manager
    if sender.jid is None:
        return not_manager
    found = [o for o in view.occupants.values() if o.jid == sender.jid]
    if any(o.affiliation in MANAGING for o in found):
        return None
    if not view.shows_jids:
        return msg(
            "{room} does not show the bot its occupants' real addresses, so it cannot "
            "tell that you manage it. Run the command in the room, or ask its owner to "
            "make the room non-anonymous or give the bot the moderator role.", room=room,
        )
    if not found:
        return msg("You must be in {room} as one of its owners or admins to do that.",
                   room=room)
    return not_manager


def _hidden_named(room: str) -> str:
    return msg(
        "{room} does not show the bot its occupants' real addresses, and a named manager "
        "is recognised only by one (a nickname proves nothing): send the command to the "
        "bot directly from the named account, or ask an owner to make the room "
        "non-anonymous or give the bot the moderator role.", room=room,
    )


def owner_refusal(room: str, view: RoomView | None, sender: Sender) -> str | None:
    """None when `sender` is an owner of `room` (its `owner` affiliation, as the room
    reports it: of the occupant of that nickname in the room, or of the real JID seen
    among its occupants elsewhere), else the sentence saying why not. Named managers are
    not owners: they cannot name others, nor send the bot away."""
    if view is None or not view.joined:
        return msg("The bot is not in {room}, so it cannot see who owns it.", room=room)
    not_owner = msg("Only the owners of {room} may do that.", room=room)
    if sender.room == room and sender.nick is not None:
        occupant = view.occupants.get(sender.nick)
        return None if occupant is not None and occupant.affiliation == "owner" else not_owner
    if sender.jid is None:
        return not_owner
    found = [o for o in view.occupants.values() if o.jid == sender.jid]
    if any(o.affiliation == "owner" for o in found):
        return None
    if not view.shows_jids:
        return msg(
            "{room} does not show the bot its occupants' real addresses, so it cannot "
            "tell that you own it. Run the command in the room, or ask its owner to "
            "make the room non-anonymous or give the bot the moderator role.", room=room,
        )
    if not found:
        return msg("You must be in {room} as one of its owners to do that.", room=room)
    return not_owner


def managed_rooms(
    views: Mapping[str, RoomView], jid: str, named: Mapping[str, Collection[str]] | None = None
) -> list[str]:
    """The rooms in which the real JID `jid` is seen as an owner or admin, or which name
    it as a manager."""
    seen = {
        room for room, view in views.items()
        if any(o.jid == jid and o.affiliation in MANAGING for o in view.occupants.values())
    }
    seen |= {room for room, jids in (named or {}).items() if jid in jids}
    return sorted(seen)


def owned_rooms(views: Mapping[str, RoomView], jid: str) -> list[str]:
    """The rooms in which the real JID `jid` is seen as an owner."""
    return sorted(
        room for room, view in views.items()
        if any(o.jid == jid and o.affiliation == "owner" for o in view.occupants.values())
    )


# --- the private link on joining ---------------------------------------------------------


def mute_refusal(person: str | None) -> str | None:
    """A mute is kept for a person the room vouches for: a real JID, else an occupant id
    (XEP-0421). A nickname is anyone's to take, so nothing is kept for it."""
    if person is not None and person.startswith(("jid:", "id:")):
        return None
    return msg(
        "This room shows the bot neither your address nor an occupant id, so it cannot "
        "tell you apart from the next person to take your nickname; nothing was changed. "
        "Send `mute all` to the bot directly instead."
    )


# --- the subject pin -----------------------------------------------------------------------


def subject_refusal(
    room: str, *, in_room: bool, role: str | None, occupants_may: bool | None
) -> str | None:
    """None when the bot may change the subject of `room`: it is a moderator there, or the
    room lets its occupants change the subject (muc#roomconfig_changesubject) and the bot
    has voice. Otherwise what the owner must grant."""
    if not in_room:
        return msg("The bot is not in {room}, so it cannot change its subject.", room=room)
    if role == "moderator" or (occupants_may and role == "participant"):
        return None
    if occupants_may:
        return msg(
            "The bot has no voice in {room}, so it may not change the subject: an owner "
            "must give the bot voice (or the moderator role).", room=room,
        )
    return msg(
        "The bot may not change the subject of {room}: an owner must make the bot a "
        "moderator (give it the admin affiliation), or let occupants change the subject "
        "(room configuration “Allow anyone to set the room's subject”, "
        "muc#roomconfig_changesubject).", room=room,
    )


# --- commands and forms --------------------------------------------------------------------


def level(*, admin: bool, manager: bool, owner: bool = False) -> Role:
    """The highest role a sender holds where they ask."""
    if admin:
        return Role.ADMIN
    return Role.OWNER if owner else Role.MANAGER if manager else Role.ANYONE


def may_run(needed: Role, held: Role) -> bool:
    """A command (or form) needing `needed` may be run, listed in help or offered as a form
    by whoever holds `held`."""
    return needed <= held


def role_refusal(needed: Role, *, admin: bool, command: str) -> str | None:
    """The refusal of a command whose role the sender lacks before its room is known: an
    admin's command to a non-admin. (A manager's command is decided by manager_refusal,
    once its room is known.)"""
    if needed is Role.ADMIN and not admin:
        return msg("Only an addinbot admin may run {command}.", command=command)
    return None


def held_for_forms(
    *, admin: bool, managed: Iterable[str], owned: Iterable[str] = ()
) -> Role:
    """A form's requester manages a room where it is seen managing one (or is named)."""
    return level(
        admin=admin, manager=any(True for _ in managed), owner=any(True for _ in owned)
    )


def direct_only_refusal(
    name: str, direct: Collection[str], room: Collection[str]
) -> str | None:
    """A private message sent through a room proves only a nickname: the commands that
    exist only by direct message (where the sender's real JID is known) are refused there."""
    if name in direct and name not in room:
        return msg(
            "Send “{command}” to the bot directly, not through a room: a private message "
            "from a room proves only a nickname, not who you are.", command=name,
        )
    return None


# --- invitations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InvitationCheck:
    """What the bot may know of an invitation before joining the room."""

    inviter: str | None  # the real bare JID vouched for; None when nobody vouches for one
    room: str
    mediated: bool  # sent by the room itself (XEP-0045), which proves the room exists
    room_exists: bool | None  # None: not asked


def accept_outright(admins: Collection[str], invitation: InvitationCheck) -> bool:
    """An admin's invitation is accepted as an admin's `join` would be."""
    return is_admin(admins, invitation.inviter)


def look_refusal(invitation: InvitationCheck) -> str | None:
    """Anyone else's invitation is accepted only once the bot, in the room, sees the
    inviter as one of its managers (manager_refusal): None if the bot may join to look."""
    if invitation.inviter is None:
        return msg(
            "the invitation does not show who sent it (only a room nickname), so the bot "
            "cannot check that an owner or admin of the room invited it."
        )
    return existence_refusal(invitation)


def existence_refusal(invitation: InvitationCheck) -> str | None:
    """Anyone's invitation, an admin's too, only to a room that exists: a join would create
    a missing one, with the bot its owner. A mediated invitation comes from the room."""
    if invitation.room_exists is False:
        return msg("there is no room {room}.", room=invitation.room)
    if invitation.room_exists is None and not invitation.mediated:
        return msg("the bot could not check that {room} exists; try again later.",
                   room=invitation.room)
    return None


def held_to_invitation_limits(admins: Collection[str], inviter: str | None) -> bool:
    """Invitations from anyone but an admin (by the real JID vouched for) count against the
    sender's rate limit and the invitation limits; an admin's are never held back."""
    return not is_admin(admins, inviter)


def missing_room_refusal(room: str, exists: bool | None) -> str | None:
    """The bot joins only rooms that exist (a join would create a missing one, with the bot
    its owner): None if `room` was found to exist."""
    if exists is False:
        return msg("There is no room {room}: the bot joins only rooms that exist.", room=room)
    if exists is None:
        return msg("The bot could not check that {room} exists; nothing changed. "
                   "Try again later.", room=room)
    return None


def invitation_refusal(
    room: str, view: RoomView | None, inviter: str, named: Collection[str] = frozenset()
) -> str | None:
    """Having joined to look: the invitation stands if the inviter manages the room, by
    the real JID the room reports, or is one of its named managers (the server vouches for
    a direct invitation's sender): the same rule as a manager's direct-message attach."""
    return manager_refusal(room, view, Sender(inviter), named)
