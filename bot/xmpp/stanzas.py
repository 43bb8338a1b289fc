"""Stanzas read into plain values, and the few elements the bot adds: plain functions over
ElementTree, so that each rule about what a stanza means is written once.

What must never be acted on is dropped here: errors and headlines, history and offline
storage (delayed), carbon copies and forwards, the bot's own reflections, a room's own
messages. bot.xmpp.muc calls these on every message and room presence the bot receives.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping

from slixmpp import JID

from bot.names import NOT_XML, REPLACEMENT
from bot.values import Kind, Link, Message, Presence, Subject

NS_CLIENT = "jabber:client"
NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_DELAY = "urn:xmpp:delay"
NS_LEGACY_DELAY = "jabber:x:delay"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0"
NS_OOB = "jabber:x:oob"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"  # the stanza's xml:lang attribute
MESSAGE_TAG = f"{{{NS_CLIENT}}}message"
BODY_TAG = f"{{{NS_CLIENT}}}body"
SUBJECT_TAG = f"{{{NS_CLIENT}}}subject"
PRESENCE_TAG = f"{{{NS_CLIENT}}}presence"
MUC_USER_X = f"{{{NS_MUC_USER}}}x"
DELAYS = (f"{{{NS_DELAY}}}delay", f"{{{NS_LEGACY_DELAY}}}x")
WRAPPERS = (f"{{{NS_CARBONS}}}received", f"{{{NS_CARBONS}}}sent", f"{{{NS_FORWARD}}}forwarded")
OCCUPANT_PRESENCE_TYPES = frozenset({None, "unavailable"})  # what a room says of an occupant


def has_any(xml: ET.Element, *tags: str) -> bool:
    return any(xml.find(tag) is not None for tag in tags)


def status_codes(muc: ET.Element | None) -> frozenset[int]:
    """The MUC status codes under a muc#user element: ASCII digits only."""
    if muc is None:
        return frozenset()
    return frozenset(
        int(code)
        for status in muc.findall(f"{{{NS_MUC_USER}}}status")
        if (code := status.get("code", "")).isascii() and code.isdigit()
    )


def is_occupant_presence(xml: ET.Element) -> bool:
    """A room's word about an occupant (available or unavailable, with MUC user data)."""
    return (
        xml.tag == PRESENCE_TAG and xml.get("type") in OCCUPANT_PRESENCE_TYPES
        and xml.find(MUC_USER_X) is not None
    )


def to_presence(xml: ET.Element, *, vouches_for_ids: Callable[[str], bool]) -> Presence | None:
    """The plain value for an occupant's presence; None when it names no occupant.

    Its occupant id (XEP-0421) is taken only where ``vouches_for_ids(room)`` (the room
    advertises the feature, so it strips ids occupants write themselves and adds its own),
    and only when there is exactly one."""
    sender = JID(xml.get("from", ""))
    muc = xml.find(MUC_USER_X)
    if muc is None or not sender.resource:
        return None
    item = muc.find(f"{{{NS_MUC_USER}}}item")
    attrs = item.attrib if item is not None else {}
    real = attrs.get("jid")
    room = sender.bare.lower()
    ids = xml.findall(f"{{{NS_OCCUPANT_ID}}}occupant-id") if vouches_for_ids(room) else []
    return Presence(
        room=room,
        nick=sender.resource,
        available=xml.get("type", "available") != "unavailable",
        affiliation=attrs.get("affiliation", "none"),
        role=attrs.get("role", "none"),
        jid=JID(real).bare.lower() if real else None,
        occupant_id=(ids[0].get("id") or None) if len(ids) == 1 else None,
        codes=status_codes(muc),
        new_nick=attrs.get("nick"),
        destroyed=muc.find(f"{{{NS_MUC_USER}}}destroy") is not None,
    )


def live_sender(xml: ET.Element) -> JID | None:
    """Who sent a live message, as the server delivered it; None for what is never acted on:
    history, offline storage or a relay (a delay stamp), anything wrapped (a carbon or a
    forward, which the bot never asks for), or a sender that is no JID."""
    if has_any(xml, *DELAYS) or has_any(xml, *WRAPPERS):
        return None
    try:
        return JID(xml.get("from", ""))
    except Exception:
        return None


def to_message(
    xml: ET.Element, *, own_jid: str, own_nick: Callable[[str], str | None],
    is_room: Callable[[str, ET.Element], bool],
) -> Message | None:
    """The plain value for a message stanza, or None when it must not be acted on.

    ``own_jid``: the bot's bare JID; ``own_nick(room)``: the bot's nickname in a room it is
    in (else None); ``is_room(bare, xml)``: the sender is a room (its occupants prove only a
    nickname)."""
    kind_attr = xml.get("type", "normal")
    if kind_attr in ("error", "headline"):
        return None
    sender = live_sender(xml)
    body = xml.findtext(BODY_TAG)
    if sender is None or not body:
        return None
    bare = sender.bare.lower()
    if not sender.user or bare == own_jid:
        return None  # the server itself, or our own account
    room, nick = bare, sender.resource
    lang = xml.get(XML_LANG) or None
    if kind_attr == "groupchat":
        own = own_nick(room)
        if own is None or not nick or nick == own:
            return None  # a room we are not in, the room itself, or our own reflection
        return Message(Kind.ROOM, body, room=room, nick=nick, lang=lang)
    if is_room(room, xml):
        if not nick:
            return None
        return Message(Kind.ROOM_PRIVATE, body, room=room, nick=nick, lang=lang)
    return Message(Kind.DIRECT, body, jid=bare, lang=lang)


NS_RELAY = "urn:addinbot:relay:0"
RELAY_TAG = f"{{{NS_RELAY}}}relay"


def relay_element(jid: str, text: str, lang: str | None) -> ET.Element:
    """A direct message handed to another process of the bot: from whom, and what."""
    element = ET.Element(RELAY_TAG, {"from": jid})
    if lang:
        element.set(XML_LANG, lang)
    element.text = text
    return element


def relayed(xml: ET.Element, *, own_full: str) -> Message | None:
    """The direct message another process of the bot handed over (a headline from the
    bot's own account, another resource: the server vouches for that `from`, and for the
    sender the first process read it from), or None for anything else. A headline is never
    stored offline nor sent on to another resource, and nothing delayed or wrapped counts."""
    element = xml.find(RELAY_TAG)
    if element is None or xml.get("type") != "headline" or live_sender(xml) is None:
        return None
    if not sibling(xml.get("from", ""), own_full=own_full):
        return None
    try:
        own, person = JID(own_full), JID(element.get("from", ""))
    except Exception:
        return None
    text = element.text or ""
    if not person.user or person.bare.lower() == own.bare.lower() or not text.strip():
        return None
    return Message(Kind.DIRECT, text, jid=person.bare.lower(),
                   lang=element.get(XML_LANG) or None, relayed=True)


MANAGED_TAG = f"{{{NS_RELAY}}}managed"
ROOM_TAG = f"{{{NS_RELAY}}}room"
MOST_MANAGED = 1000  # rooms read from one process's answer (a form lists at most these)


def sibling(sender: str, *, own_full: str) -> bool:
    """Whether `sender` (a stanza's 'from', which the server stamps) is another session of
    the bot's own account: another process."""
    try:
        jid, own = JID(sender), JID(own_full)
    except Exception:
        return False
    return jid.bare.lower() == own.bare.lower() and bool(jid.resource) and jid.full != own.full


def managed_query(jid: str) -> ET.Element:
    """Asked of another process: the rooms it serves that `jid` manages."""
    return ET.Element(MANAGED_TAG, {"jid": jid})


def managed_asked(xml: ET.Element, *, own_full: str) -> str | None:
    """The person another process of the bot asks about (an IQ get from another resource of
    the bot's own account), or None for anything else: a stranger's query is not answered."""
    query = xml.find(MANAGED_TAG)
    if query is None or xml.get("type") != "get" or not sibling(xml.get("from", ""),
                                                                own_full=own_full):
        return None
    person = _bare(query.get("jid", ""))
    return None if person is None or person == JID(own_full).bare.lower() else person


def managed_answer(rooms: Mapping[str, bool]) -> ET.Element:
    """The answer: each room the person manages, and whether they own it."""
    answer = ET.Element(MANAGED_TAG)
    for room, owner in sorted(rooms.items()):
        ET.SubElement(answer, ROOM_TAG, {"jid": room, "owner": "true" if owner else "false"})
    return answer


def managed_answered(xml: ET.Element) -> dict[str, bool]:
    """The rooms (room → owned) in another process's answer; what is no room is left out."""
    answer = xml.find(MANAGED_TAG)
    items = answer.findall(ROOM_TAG)[:MOST_MANAGED] if answer is not None else []
    return {
        room: item.get("owner") == "true"
        for item in items if (room := _bare(item.get("jid", ""))) is not None
    }


def _bare(text: str) -> str | None:
    """A bare JID with a local part (a person's, a room's), lowercased; None for any other."""
    try:
        jid = JID(text)
    except Exception:
        return None
    return jid.bare.lower() if jid.user and not jid.resource else None


def to_subject(xml: ET.Element) -> Subject | None:
    """A room's subject (a groupchat message with a subject and no body, XEP-0045 §8.1),
    or None. A delayed one is the subject as it stood (sent on joining): learnt, never
    acted on; a carbon or forward is no subject at all."""
    if xml.get("type") != "groupchat" or xml.find(BODY_TAG) is not None:
        return None
    subject = xml.find(SUBJECT_TAG)
    if subject is None or has_any(xml, *WRAPPERS):
        return None
    try:
        sender = JID(xml.get("from", ""))
    except Exception:
        return None
    if not sender.user:
        return None
    return Subject(
        sender.bare.lower(), sender.resource or None, subject.text or "", has_any(xml, *DELAYS)
    )


def subject_element(subject: str) -> ET.Element:
    element = ET.Element(SUBJECT_TAG)
    element.text = subject
    return element


def room_status(xml: ET.Element) -> tuple[str, frozenset[int]] | None:
    """(room, codes) for a live message from a room itself carrying status codes (e.g. 172:
    the room now shows real JIDs); None for anything else."""
    muc = xml.find(MUC_USER_X)
    if muc is None or muc.find(f"{{{NS_MUC_USER}}}status") is None:
        return None
    if xml.get("type") == "error" or has_any(xml, *DELAYS):
        return None
    sender = JID(xml.get("from", ""))
    if sender.resource:
        return None  # only the room itself
    return sender.bare.lower(), status_codes(muc)


def room_jid(room: str, nick: str | None = None) -> JID:
    """The JID a stanza for `room` (or for `nick` in it) goes to. `room` is in the bot's one
    form (bot.names.room_address, the server's); where slixmpp would read it as another room
    (newer Unicode tables than the server's), ValueError: nothing is sent rather than a
    stanza to the wrong room."""
    jid = JID(room)  # InvalidJID is a ValueError
    if jid.bare != room:
        raise ValueError(f"{room!r} would be addressed as {jid.bare!r}")
    return JID(f"{room}/{nick}") if nick is not None else jid


def join_element(maxstanzas: int = 0) -> ET.Element:
    """The MUC element of a join presence (XEP-0045 §7.2), asking for ``maxstanzas`` of the
    room's history (none by default: the bot acts only on what is said while it is there)."""
    muc = ET.Element(f"{{{NS_MUC}}}x")
    ET.SubElement(muc, f"{{{NS_MUC}}}history", {"maxstanzas": str(maxstanzas)})
    return muc


def add_link(stanza: ET.Element, link: Link | None) -> None:
    """The add-in's link as an out-of-band element (XEP-0066) beside the text."""
    if link is None:
        return
    oob = ET.SubElement(stanza, f"{{{NS_OOB}}}x")
    ET.SubElement(oob, f"{{{NS_OOB}}}url").text = link.url
    ET.SubElement(oob, f"{{{NS_OOB}}}desc").text = link.name


def not_persistent_element() -> ET.Element:
    """The owner's configuration that makes a room temporary (XEP-0045 §10.2): a room
    destroyed so leaves no tombstone behind (Prosody keeps one of a persistent room for a
    month, and refuses its name meanwhile)."""
    query = ET.Element(f"{{{NS_MUC}#owner}}query")
    form = ET.SubElement(query, f"{{{NS_DATA}}}x", {"type": "submit"})
    for var, value in (("FORM_TYPE", "http://jabber.org/protocol/muc#roomconfig"),
                       ("muc#roomconfig_persistentroom", "0")):
        field = ET.SubElement(form, f"{{{NS_DATA}}}field", {"var": var})
        ET.SubElement(field, f"{{{NS_DATA}}}value").text = value
    return query


def destroy_element(reason: str) -> ET.Element:
    """The owner's request that destroys a room (XEP-0045 §10.9)."""
    query = ET.Element(f"{{{NS_MUC}#owner}}query")
    destroy = ET.SubElement(query, f"{{{NS_MUC}#owner}}destroy")
    ET.SubElement(destroy, f"{{{NS_MUC}#owner}}reason").text = reason
    return query


def muc_user_element() -> ET.Element:
    """The empty muc#user element that marks a private message through a room."""
    return ET.Element(MUC_USER_X)


def make_xml_safe(xml: ET.Element) -> None:
    """The last defence for every stanza the bot sends: characters XML 1.0 cannot carry (a
    control character that slipped into the store, say) replaced by U+FFFD, in text, tails
    and attributes alike; the server would otherwise close the bot's stream."""
    for element in xml.iter():
        if element.text and NOT_XML.search(element.text):
            element.text = NOT_XML.sub(REPLACEMENT, element.text)
        if element.tail and NOT_XML.search(element.tail):
            element.tail = NOT_XML.sub(REPLACEMENT, element.tail)
        for name, value in element.attrib.items():
            if NOT_XML.search(value):
                element.set(name, NOT_XML.sub(REPLACEMENT, value))


NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DATA = "jabber:x:data"
# Whether occupants may change the subject, as rooms write it in their disco#info: the name
# XEP-0045's registry gives, ejabberd's (and XEP-0045's old example's), and Prosody's.
CHANGE_SUBJECT = frozenset({
    "muc#roominfo_subjectmod", "muc#roominfo_changesubject", "muc#roomconfig_changesubject",
})


def subject_open(iq: ET.Element) -> bool | None:
    """From a room's disco#info answer: whether occupants may change the subject, as its
    extended information (XEP-0128) says; None when it does not say."""
    for field in iq.iter(f"{{{NS_DATA}}}field"):
        if field.get("var") in CHANGE_SUBJECT:
            value = (field.findtext(f"{{{NS_DATA}}}value") or "").strip().lower()
            return value in ("1", "true")
    return None
