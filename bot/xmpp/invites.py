"""Invitation stanzas: XEP-0249 direct invitations and XEP-0045 §7.8.2 mediated ones.

Turns them into bot.invitations.Invitation values, says whom each one vouches for, and
sends the decline the way the invitation came: a mediated decline through the room, or a
chat message to the sender of a direct invitation. The decision is bot.invitations'.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from slixmpp import JID
from slixmpp.exceptions import IqError, IqTimeout

from bot import i18n
from bot.invitations import Decline, Invitation
from bot.xmpp import stanzas

if TYPE_CHECKING:
    from bot.xmpp.client import XmppEdge

NS_CONFERENCE = "jabber:x:conference"
NS_MUC_USER = stanzas.NS_MUC_USER
EXISTS_TIMEOUT_S = 10.0
MAX_REASON = 500


@dataclass(frozen=True)
class Received:
    invitation: Invitation
    reply_to: str  # the full JID a decline goes to: the inviter (direct) or the room (mediated)
    decline_to: str | None  # mediated: the inviter's JID the room forwards the decline to


def is_invitation(xml: ET.Element) -> bool:
    """Any message carrying an invitation: never a command, whatever its body says."""
    muc = xml.find(f"{{{NS_MUC_USER}}}x")
    return xml.find(f"{{{NS_CONFERENCE}}}x") is not None or (
        muc is not None and muc.find(f"{{{NS_MUC_USER}}}invite") is not None
    )


def parse(
    xml: ET.Element, *, services: frozenset[str], is_room: Callable[[str, ET.Element], bool]
) -> Received | None:
    """The invitation in a message stanza, or None when it is not to be acted on.

    A room of a served MUC service (`services`) vouches for the inviter its mediated
    invitation names; the server vouches for the sender of a direct invitation, unless
    `is_room(bare, xml)` says it came through a room, which proves only a nickname."""
    if xml.get("type", "normal") in ("error", "groupchat"):
        return None
    sender = stanzas.live_sender(xml)
    if sender is None:
        return None
    bare = sender.bare.lower()
    muc = xml.find(f"{{{NS_MUC_USER}}}x")
    invite = muc.find(f"{{{NS_MUC_USER}}}invite") if muc is not None else None
    lang = xml.get(stanzas.XML_LANG) or None  # the language the inviter is answered in
    if invite is not None:
        return _mediated(sender, bare, invite, sender.domain.lower() in services, lang)
    direct = xml.find(f"{{{NS_CONFERENCE}}}x")
    if direct is None or not direct.get("jid"):
        return None
    # Sent by a user: the server vouches for the sender; sent through a room: nobody does.
    vouched = bool(sender.user) and not is_room(bare, xml)
    invitation = Invitation(
        room=str(direct.get("jid")), inviter=bare if vouched else None, sender=str(sender),
        mediated=False, reason=(direct.get("reason") or "")[:MAX_REASON], lang=lang,
    )
    return Received(invitation, reply_to=str(sender), decline_to=None)


def _mediated(
    sender: JID, bare: str, invite: ET.Element, served: bool, lang: str | None
) -> Received:
    claimed = invite.get("from")
    # Only the room itself (a bare JID of a served MUC service) vouches for the inviter it
    # names: anyone else can write any JID there.
    vouched = served and bool(sender.user) and not sender.resource and bool(claimed)
    inviter: str | None = None
    if vouched and claimed:
        try:
            inviter = JID(claimed).bare.lower() or None
        except Exception:
            inviter = None
    invitation = Invitation(
        room=bare, inviter=inviter, sender=str(sender), mediated=True,
        reason=(invite.findtext(f"{{{NS_MUC_USER}}}reason") or "")[:MAX_REASON], lang=lang,
    )
    return Received(invitation, reply_to=bare, decline_to=claimed if vouched else None)


def decline(edge: XmppEdge, received: Received) -> Decline:
    """A Decline that answers `received` the way it came."""

    def send(refusal: str) -> None:
        room = received.invitation.room
        tr = i18n.tr(received.invitation.lang)
        reason = tr.say(refusal)
        if received.decline_to is not None:
            stanza = edge.make_message(mto=JID(received.reply_to))
            x = ET.SubElement(stanza.xml, f"{{{NS_MUC_USER}}}x")
            no = ET.SubElement(x, f"{{{NS_MUC_USER}}}decline", {"to": received.decline_to})
            ET.SubElement(no, f"{{{NS_MUC_USER}}}reason").text = reason
            edge.send_stanza(stanza)
        elif not received.invitation.mediated:
            text = tr.gettext("The bot did not accept the invitation to {room}: {reason}",
                              room=room[:200], reason=reason)
            to = JID(received.reply_to)
            edge.send_stanza(edge.make_message(mto=to, mbody=text, mtype="chat"))

    return send


async def room_exists(edge: XmppEdge, room: str) -> tuple[bool | None, frozenset[str]]:
    """Ask the room (disco#info): True, False (item-not-found), or None (no clear answer),
    with the features it advertises (none unless it answered)."""
    try:
        features = await edge.disco_info(room, EXISTS_TIMEOUT_S)
    except IqError as exc:
        return (False if exc.condition == "item-not-found" else None), frozenset()
    except IqTimeout:
        return None, frozenset()
    return True, features
