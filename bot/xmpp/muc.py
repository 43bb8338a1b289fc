"""The bot's MUC handling (XEP-0045) as a slixmpp plugin, composed the way slixmpp's own are.

slixmpp's xep_0045 plugin is not used: it keeps a roster of every occupant of every room,
pulls in capabilities (XEP-0115, which asks each occupant's client for its features) and
five more plugins, and raises events the bot does not listen to. The bot needs less:

- joining without history, and leaving;
- occupants' presences read into bot.values.Presence and handed to the bot. They are most
  of what a busy bot receives, so they are taken by an in-filter (``add_filter("in")``,
  after stream management's, which counts every stanza) and go no further: no handler
  matching, no events. Errors, subscriptions and everything else go on to slixmpp;
- every message stanza, through one handler: invitations (bot.xmpp.invites), a room's own
  status codes, and commands (bot.xmpp.stanzas.to_message);
- a room heard from is alive (bot.xmpp.liveness need not self-ping it).
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any, ClassVar

from slixmpp import JID
from slixmpp.plugins import BasePlugin
from slixmpp.plugins.base import register_plugin
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from bot.values import Message, Presence
from bot.xmpp import invites, stanzas

if TYPE_CHECKING:
    from bot.xmpp.client import XmppEdge

log = logging.getLogger(__name__)

NAME = "addinbot_muc"
SELF = 110  # MUC status: the presence is the bot's own
MAX_HELD = 5000  # occupants' presences held per room while joining (see _settle)
HANDLER = "addinbot messages"


class MucPlugin(BasePlugin):
    name = NAME
    description = "addinbot: the rooms and messages the bot acts on"
    dependencies: ClassVar[set[str]] = {"xep_0030"}
    edge: XmppEdge  # set by attach(), before the stream connects

    def plugin_init(self) -> None:
        # Rooms that vouch for XEP-0421 occupant ids: only theirs are the room's own
        # (elsewhere an occupant writes any id it likes into its presence). A room says so
        # in its disco#info, and by the id it puts in the bot's own presence on joining
        # (the bot sends none; a room without the feature would add none).
        self.occupant_id_rooms: set[str] = set()
        # Rooms joining: the bot's nickname there, and the occupants' presences the room
        # sent before the bot's own, held until that one says whether it vouches for ids.
        self._settling: dict[str, tuple[str, list[ET.Element]]] = {}
        self.xmpp.add_filter("in", self._room_presence)
        # Not the "message" event: that is only raised for a message with a body.
        self.xmpp.register_handler(
            Callback(HANDLER, MatchXPath(stanzas.MESSAGE_TAG), self._message)
        )
        self.xmpp.add_event_handler("presence_error", self._presence_error)
        self.xmpp.add_event_handler("session_bind", self._session_bind)

    def plugin_end(self) -> None:
        self.xmpp.del_filter("in", self._room_presence)
        self.xmpp.remove_handler(HANDLER)
        self.xmpp.del_event_handler("presence_error", self._presence_error)
        self.xmpp.del_event_handler("session_bind", self._session_bind)

    def attach(self, edge: XmppEdge) -> None:
        self.edge = edge

    def _session_bind(self, _jid: Any) -> None:
        self.xmpp.plugin["xep_0030"].add_feature(stanzas.NS_MUC)
        self._settling.clear()  # a new session: no join of the last one will be answered

    # --- outbound --------------------------------------------------------------------------

    def join_stanza(self, room: str, nick: str, maxstanzas: int = 0) -> Any:
        """The presence that joins ``room`` as ``nick``, asking for ``maxstanzas`` of its
        history (none unless asked)."""
        stanza = self.xmpp.make_presence(pto=stanzas.room_jid(room, nick))
        stanza.xml.append(stanzas.join_element(maxstanzas))
        self._settling[room.lower()] = (nick, [])  # as presences name it: bare, lowered
        return stanza

    def leave_stanza(self, room: str, nick: str) -> Any:
        self._settling.pop(room.lower(), None)
        return self.xmpp.make_presence(pto=stanzas.room_jid(room, nick), ptype="unavailable")

    # --- presences -------------------------------------------------------------------------

    def _room_presence(self, stanza: Any) -> Any:
        """In-filter: an occupant's presence is taken here and goes no further."""
        xml = stanza.xml
        if not stanzas.is_occupant_presence(xml):
            return stanza
        try:
            presence = self.to_presence(xml)
        except Exception:  # raised here, it would end the stream: slixmpp's handlers catch
            log.exception("unreadable presence from %r", xml.get("from"))
            return stanza
        if presence is None:
            return stanza  # no occupant named: nothing for the bot
        self.edge.liveness.heard(presence.room)
        settling = self._settling.get(presence.room)
        if settling is not None:
            self._settle(presence, xml, *settling)
            return None
        self._hand_over(presence)
        return None

    def _settle(self, presence: Presence, xml: ET.Element, nick: str,
                held: list[ET.Element]) -> None:
        """A presence from a room the bot is joining: an occupant's is held until the
        bot's own arrives (the room sends that one last); then the bot's own says whether
        the room vouches for occupant ids, and all are read again and handed over in order."""
        own = SELF in presence.codes or presence.nick == nick
        if not own and len(held) < MAX_HELD:
            held.append(xml)
            return
        if not own:  # a room bigger than the bot holds: read as its disco#info said
            self._hand_over(presence)
            return
        del self._settling[presence.room]
        if presence.available:
            ids = xml.findall(f"{{{stanzas.NS_OCCUPANT_ID}}}occupant-id")
            if len(ids) == 1:
                self.occupant_id_rooms.add(presence.room)
            else:
                self.occupant_id_rooms.discard(presence.room)
        for earlier in [*held, xml]:
            again = self.to_presence(earlier)
            if again is not None:
                self._hand_over(again)

    def _hand_over(self, presence: Presence) -> None:
        bot = self.edge.bot
        if bot is not None:
            try:
                bot.on_presence(presence)
            except Exception:  # logged, as slixmpp logs a failing event handler's
                log.exception("handling a presence from %s failed", presence.room)

    def to_presence(self, xml: ET.Element) -> Presence | None:
        return stanzas.to_presence(xml, vouches_for_ids=self.occupant_id_rooms.__contains__)

    def room_features(self, room: str, features: frozenset[str]) -> None:
        """What a room's disco#info advertises (when the bot asks it)."""
        if stanzas.NS_OCCUPANT_ID in features:
            self.occupant_id_rooms.add(room)
        else:
            self.occupant_id_rooms.discard(room)

    def _presence_error(self, stanza: Any) -> None:
        room = stanza["from"].bare.lower()
        self._settling.pop(room, None)
        bot = self.edge.bot
        if bot is not None and bot.own_nick(room) is not None:
            bot.on_join_error(room, stanza["error"]["condition"] or "unknown")

    # --- messages --------------------------------------------------------------------------

    def _message(self, stanza: Any) -> None:
        xml = stanza.xml
        if xml.get("type") == "groupchat":
            self.edge.liveness.heard(JID(xml.get("from", "")).bare.lower())
        bot = self.edge.bot
        if bot is None or not self.edge.for_me(xml.get("to")):
            return  # sent to the bare JID: another process holds the desk
        if xml.find(stanzas.RELAY_TAG) is not None:
            handed = stanzas.relayed(xml, own_full=str(self.edge.boundjid))
            if handed is not None:
                bot.on_message(handed)
            return  # another process's hand-over, or a claim to be one: never a command
        if invites.is_invitation(xml):
            self._invitation(xml)  # body or not: never a command
            return
        status = stanzas.room_status(xml)
        if status is not None and bot.own_nick(status[0]) is not None:
            bot.on_room_status(*status)
        if xml.find(stanzas.BODY_TAG) is None:
            subject = stanzas.to_subject(xml)
            if subject is not None and bot.own_nick(subject.room) is not None:
                bot.on_subject(subject)
            return  # no body, no command (nor read as one)
        message = self.to_message(xml)
        if message is not None:
            bot.on_message(message)

    def to_message(self, xml: ET.Element) -> Message | None:
        """The plain value for a message stanza, or None when it must not be acted on."""
        bot = self.edge.bot
        return stanzas.to_message(
            xml, own_jid=self.xmpp.boundjid.bare.lower(),
            own_nick=bot.own_nick if bot is not None else lambda _room: None,
            is_room=self.is_room,
        )

    def is_room(self, bare: str, xml: ET.Element) -> bool:
        """A message from a room occupant, not from a user: it proves only a nickname."""
        if xml.find(stanzas.MUC_USER_X) is not None:
            return True
        return self.edge.is_room_jid(bare)

    def _invitation(self, xml: ET.Element) -> None:
        """Every invitation goes to the bot at once: it decides, and asks the room whether
        it exists (a direct invitation names any room) only once the sender is within its
        limits (bot.app, bot.invitations)."""
        received = invites.parse(xml, services=self.edge.services, is_room=self.is_room)
        bot = self.edge.bot
        if received is None or bot is None:
            return
        bot.on_invitation(received.invitation, invites.decline(self.edge, received))


register_plugin(MucPlugin)
