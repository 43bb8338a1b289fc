"""Ad-hoc commands (XEP-0050) with data forms (XEP-0004): the protocol side of the panel.

The operations themselves are bot.xmpp.panel's (the chat commands declared with a form).
Here: service discovery (the command list
is filtered per requester, and a command node is not even described to whom it is not
offered), sessions (each bound to the full JID that started it, expiring after ten
minutes), forms to stanzas and back, and the checks on every step: who is asking (IQs come
from the requester's real full JID; one relayed by a room proves nothing and is refused),
whether they may run it (else `forbidden`), and for a manager whether they manage the room
chosen. slixmpp's own xep_0050 plugin is not used: it binds no session to its requester.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from slixmpp import JID, Iq
from slixmpp.exceptions import IqError, IqTimeout, XMPPError
from slixmpp.plugins.xep_0004 import Form
from slixmpp.plugins.xep_0030 import DiscoInfo, DiscoItems
from slixmpp.plugins.xep_0050 import Command
from slixmpp.xmlstream import register_stanza_plugin
from slixmpp.xmlstream.handler import Callback, CoroutineCallback
from slixmpp.xmlstream.matcher import MatchXPath, StanzaPath

from bot import i18n, policy
from bot.errors import CommandError
from bot.i18n import Tr, msg
from bot.values import Actor
from bot.xmpp import stanzas
from bot.xmpp.panel import (
    PANEL,
    Field,
    Operation,
    Outcome,
    Panel,
    Requester,
    Values,
    manager_refusal,
    may_offer,
    named_room,
)

if TYPE_CHECKING:
    from slixmpp.types import ErrorConditions  # (slixmpp >= 1.8.1)

    from bot.xmpp.client import XmppEdge

log = logging.getLogger(__name__)

NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"
SESSION_TTL_S = 600.0
MOST_SESSIONS = 200  # open forms in all
MOST_PER_REQUESTER = 5  # open forms of one account (bare JID): its oldest goes first
ASK_TIMEOUT_S = 3.0  # several processes: how long another one has to say what a person manages
PANEL_TITLE = msg("addinbot Control Panel")


def _tr(stanza: Any) -> Tr:
    """The requester's language: the IQ's xml:lang (English without one)."""
    return i18n.tr(stanza["lang"] if isinstance(stanza, Iq) else None)


@dataclass(frozen=True)
class _Session:
    node: str
    requester: str  # the full JID that started it: only it may go on
    fields: tuple[Field, ...]
    started: float
    account: str = ""  # its bare JID, for the cap per requester
    admin: bool = False  # an admin's form is never evicted for anyone else's


class AdhocCommands:
    def __init__(self, edge: XmppEdge, panel: Panel = PANEL) -> None:
        self.edge = edge
        self.panel = panel
        self.sessions: dict[str, _Session] = {}
        register_stanza_plugin(Iq, Command)
        register_stanza_plugin(Command, Form, iterable=True)
        edge.register_handler(CoroutineCallback(
            "addinbot ad-hoc commands", StanzaPath("iq@type=set/command"), self._command
        ))
        edge.register_handler(Callback(
            "addinbot managed rooms", MatchXPath(f"{{jabber:client}}iq/{stanzas.MANAGED_TAG}"),
            self._managed_asked,
        ))
        self.disco = edge.disco
        self.disco.api.register(self._items, "get_items")
        self.disco.api.register(self._info, "get_info")

    def session_bind(self) -> None:
        self.disco.add_feature(NS_COMMANDS)
        self.sessions.clear()

    async def requester(self, sender: JID) -> Requester | None:
        """Who is asking, as the server vouches for it; None for a room or a server. Several
        processes: a person who is no admin may manage rooms the others serve, so they are
        asked (bot.managed_elsewhere)."""
        bot = self.edge.bot
        if bot is None or not sender.user:
            return None
        bare = sender.bare.lower()
        if self.edge.is_room_jid(bare):
            return None  # relayed by a room: a nickname, not a person
        admin = policy.is_admin(bot.settings.roles.admins, bare)
        here = policy.managed_rooms(bot.rooms.rooms, bare, bot.rooms.named_managers)
        elsewhere = {} if admin else await bot.managed_elsewhere(bare)
        managed = sorted(set(here) | set(elsewhere))
        return Requester(bare, admin, tuple(managed), elsewhere)

    async def ask_managed(self, process: str, jid: str) -> dict[str, bool]:
        """Ask another process of the bot which rooms it serves that `jid` manages."""
        iq: Any = self.edge.make_iq_get(ito=self.edge.process_jid(process))
        iq.xml.append(stanzas.managed_query(jid))
        try:
            answer = await iq.send(timeout=ASK_TIMEOUT_S)
        except (IqError, IqTimeout) as exc:
            log.warning("process %s did not say which rooms %s manages: %s", process, jid,
                        type(exc).__name__)
            return {}
        return stanzas.managed_answered(answer.xml)

    def _managed_asked(self, iq: Any) -> None:
        """Another process of the bot asks which rooms this one serves that a person
        manages; anyone else asking is told the query is not served here."""
        if iq["type"] != "get":
            return  # an answer (to ask_managed, whose send takes it), or an error: no reply
        bot = self.edge.bot
        jid = stanzas.managed_asked(iq.xml, own_full=self.edge.boundjid.full)
        if bot is None or jid is None:
            raise XMPPError("service-unavailable")
        reply = iq.reply()
        reply.xml.append(stanzas.managed_answer(bot.managed_here(jid)))
        self.edge.send_stanza(reply)

    # --- service discovery -----------------------------------------------------------------

    async def _items(self, jid: Any, node: str | None, ifrom: Any, data: Any) -> Any:
        if node != NS_COMMANDS:
            return self.disco.static.get_items(jid, node, ifrom, data)
        items = DiscoItems()
        items["node"] = NS_COMMANDS
        requester = await self.requester(JID(ifrom)) if ifrom else None
        tr = _tr(data)
        if requester is not None:
            for operation in self.panel.offered(requester):
                items.add_item(self.edge.boundjid, operation.node, tr.gettext(operation.name))
        return items

    async def _info(self, jid: Any, node: str | None, ifrom: Any, data: Any) -> Any:
        if node == NS_COMMANDS:
            info = DiscoInfo()
            info.add_identity("automation", "command-list", name=_tr(data).gettext(PANEL_TITLE))
            return info
        operation = self.panel.operations.get(node or "")
        if operation is None:
            return self.disco.static.get_info(jid, node, ifrom, data)
        requester = await self.requester(JID(ifrom)) if ifrom else None
        if requester is None or not may_offer(operation, requester):
            raise XMPPError("item-not-found")
        info = DiscoInfo()
        info.add_identity("automation", "command-node", name=_tr(data).gettext(operation.name))
        info.add_feature(NS_COMMANDS)
        info.add_feature(NS_DATA)
        return info

    # --- commands --------------------------------------------------------------------------

    async def _command(self, iq: Any) -> None:
        command = iq["command"]
        node, action, sid = command["node"], command["action"] or "execute", command["sessionid"]
        operation = self.panel.operations.get(node)
        if operation is None:
            raise XMPPError("item-not-found")
        requester = await self.requester(iq["from"])
        if requester is None or not may_offer(operation, requester):
            log.info("ad-hoc %s refused to %s", node, iq["from"])
            refused = _tr(iq).gettext("You may not run this command.")
            raise XMPPError("forbidden", refused, etype="auth")
        if not sid:
            if action != "execute":
                raise _command_error("bad-request", "malformed-action")
            await self._start(iq, operation, requester)
        else:
            await self._go_on(iq, operation, requester, sid, action)

    async def _start(self, iq: Any, operation: Operation, requester: Requester) -> None:
        bot = self.edge.bot
        assert bot is not None  # noqa: S101 - requester() saw it
        tr = _tr(iq)
        try:
            fields = await bot.store.run(operation.fields, bot.settings, bot.store, requester)
        except CommandError as exc:
            self._reply(iq, _new_id(), "completed", Outcome(tr.say(exc.message), error=True))
            return
        if not fields:  # nothing to ask: run at once
            outcome = await self._run(operation, requester, {}, tr)
            self._reply(iq, _new_id(), "completed", outcome)
            return
        sid = self._open(operation, requester, iq["from"].full, fields, tr)
        self._reply(iq, sid, "executing", form=self._form(operation, fields, tr))

    async def _go_on(
        self, iq: Any, operation: Operation, requester: Requester, sid: str, action: str
    ) -> None:
        session = self.sessions.get(sid)
        mine = session is not None and session.requester == iq["from"].full
        if session is None or not mine or session.node != operation.node:
            raise _command_error("bad-request", "bad-sessionid")
        if action == "cancel":
            del self.sessions[sid]
            self._reply(iq, sid, "canceled")
            return
        # Every form is one stage, so "next" submits it too: poezio (slixmpp's
        # continue_command) sends "next" whatever actions the form offers.
        if action not in ("execute", "complete", "next"):
            raise _command_error("bad-request", "bad-action")
        del self.sessions[sid]
        if asyncio.get_running_loop().time() - session.started > SESSION_TTL_S:
            raise _command_error("not-allowed", "session-expired")
        given = _given(iq["command"].xml, session.fields)
        tr = _tr(iq)
        try:
            _check_required(session.fields, given)
            outcome = await self._attempt(operation, requester, given, tr)
        except CommandError as exc:
            # Bad input or a refusal: the same form again, with what was typed in and why it
            # was refused, so nothing typed is lost; the session goes on.
            fields = [replace(f, value=given.get(f.var, f.value)) for f in session.fields]
            self.sessions[sid] = replace(session, fields=tuple(fields))
            refused = tr.say(exc.message)
            self._reply(iq, sid, "executing", Outcome(refused, error=True),
                        form=self._form(operation, fields, tr, refused=refused))
            return
        self._reply(iq, sid, "completed", outcome)

    async def _run(
        self, operation: Operation, requester: Requester, values: Values, tr: Tr
    ) -> Outcome:
        """A command that needs no form: its outcome, a refusal as an error note."""
        try:
            return await self._attempt(operation, requester, values, tr)
        except CommandError as exc:
            return Outcome(tr.say(exc.message), error=True)

    async def _attempt(
        self, operation: Operation, requester: Requester, values: Values, tr: Tr
    ) -> Outcome:
        """The same rules as chat: the role (checked by the caller), the manager's room,
        then bot.addins off the loop. A refusal raises CommandError."""
        bot = self.edge.bot
        assert bot is not None  # noqa: S101 - requester() saw it
        try:
            refusal = manager_refusal(operation, requester, bot.settings, bot.rooms, values)
            if refusal is not None and await bot.served_elsewhere(
                named_room(operation, bot.settings, values)
            ):
                refusal = manager_refusal(operation, requester, bot.settings, bot.rooms,
                                          values, served_elsewhere=True)
            if refusal is not None:
                raise XMPPError("forbidden", tr.say(refusal), etype="auth")
            await operation.check_room(bot.settings, values, bot.room_exists)
            actor = Actor(requester.jid, "adhoc")
            outcome = await bot.store.run(
                operation.run, bot.settings, bot.store, actor, values, tr
            )
        except (CommandError, XMPPError):
            raise
        except Exception:
            ref = secrets.token_hex(4)
            log.exception("ad-hoc %s failed (ref %s) for %s", operation.node, ref, requester.jid)
            return Outcome(tr.gettext(
                "Sorry, something went wrong (ref: {ref}). The operator's log has it.", ref=ref
            ), error=True)
        bot.changed(outcome.changes)
        return outcome

    def _open(
        self, operation: Operation, requester: Requester, full: str, fields: list[Field],
        tr: Tr = i18n.ENGLISH,
    ) -> str:
        """A new session. One account holds at most MOST_PER_REQUESTER (its own oldest goes);
        all together at most MOST_SESSIONS, and when they are full the oldest of anyone
        but an admin goes — an admin's form only for another admin's. Nothing to evict:
        `resource-constraint`, and the requester tries again later."""
        now = asyncio.get_running_loop().time()
        for sid, session in list(self.sessions.items()):
            if now - session.started > SESSION_TTL_S:
                del self.sessions[sid]
        mine = [sid for sid, s in self.sessions.items() if s.account == requester.jid]
        while len(mine) >= MOST_PER_REQUESTER:
            del self.sessions[mine.pop(0)]  # (sessions keep the order they were opened in)
        if len(self.sessions) >= MOST_SESSIONS:
            evictable = [sid for sid, s in self.sessions.items() if not s.admin]
            if not evictable and not requester.is_admin:
                log.warning("ad-hoc %s refused to %s: %d forms open, all admins'",
                            operation.node, full, len(self.sessions))
                raise XMPPError(
                    "resource-constraint",
                    tr.gettext("Too many forms are open; try again in a few minutes."),
                    etype="wait",
                )
            del self.sessions[(evictable or list(self.sessions))[0]]  # the oldest
        sid = _new_id()
        self.sessions[sid] = _Session(
            operation.node, full, tuple(fields), now, requester.jid, requester.is_admin
        )
        return sid

    def _reply(
        self, iq: Any, sid: str, status: str, outcome: Outcome | None = None,
        form: Any = None,
    ) -> None:
        node = iq["command"]["node"]
        reply = iq.reply()
        command = reply["command"]
        command["node"] = node
        command["sessionid"] = sid
        command["status"] = status
        if status == "executing":
            command["actions"] = ["complete"]
            actions = command.xml.find(f"{{{NS_COMMANDS}}}actions")
            if actions is not None:
                actions.set("execute", "complete")
        if outcome is not None:
            command.add_note(outcome.note, "error" if outcome.error else "info")
            if outcome.text or outcome.table is not None:
                command.xml.append(_result(outcome))
        if form is not None:
            command.append(form)
        self.edge.send_stanza(reply)

    def _form(
        self, operation: Operation, fields: list[Field], tr: Tr, refused: str = ""
    ) -> Any:
        """The form to fill in, in `tr`'s language; given back after a refusal, its title
        also says why (some clients show a form's title but not the note beside it:
        profanity, poezio)."""
        forms: Any = self.edge.forms
        title = tr.gettext(operation.name)
        form = forms.make_form("form", f"{title} — {refused}" if refused else title)
        if operation.instructions:
            form["instructions"] = tr.gettext(operation.instructions)
        for spec in fields:
            options = [{"label": o, "value": o} for o in spec.options] if spec.options else None
            added = form.add_field(
                var=spec.var, ftype=spec.kind, label=tr.say(spec.label), required=spec.required,
                options=options,
            )
            if spec.value:
                added["value"] = spec.value
        return form


def _result(outcome: Outcome) -> ET.Element:
    """A result form: the note as its title, the answer's lines as a text field, then its
    table (reported columns, one item a row) if it has one. Built directly: it may be long,
    and it is built on the loop."""
    form = ET.Element(f"{{{NS_DATA}}}x", {"type": "result"})
    # The note as the title too: profanity and poezio show a result form's title, but not
    # the note beside it (or not in the same window).
    ET.SubElement(form, f"{{{NS_DATA}}}title").text = outcome.note
    # The text first: clients that show no multi-item table (profanity and poezio among
    # them) still show a text-multi field.
    if outcome.text:
        attributes = {"var": "text", "type": "text-multi", "label": outcome.text_label}
        text = ET.SubElement(form, f"{{{NS_DATA}}}field", attributes)
        for line in outcome.text:
            ET.SubElement(text, f"{{{NS_DATA}}}value").text = line
    table = outcome.table
    if table is not None:
        reported = ET.SubElement(form, f"{{{NS_DATA}}}reported")
        for var, label in table.columns:
            ET.SubElement(reported, f"{{{NS_DATA}}}field", {"var": var, "label": label})
        for row in table.rows:
            item = ET.SubElement(form, f"{{{NS_DATA}}}item")
            for (var, _label), value in zip(table.columns, row, strict=True):
                field = ET.SubElement(item, f"{{{NS_DATA}}}field", {"var": var})
                ET.SubElement(field, f"{{{NS_DATA}}}value").text = value
    return form


def _new_id() -> str:
    return secrets.token_urlsafe(16)


def _command_error(condition: ErrorConditions, specific: str) -> XMPPError:
    """An error with XEP-0050's specific condition (bad-sessionid, session-expired, …)."""
    return XMPPError(condition, extension=specific, extension_ns=NS_COMMANDS)


def _given(command: ET.Element, fields: tuple[Field, ...]) -> Values:
    """The values of the submitted form for the fields the form asked for."""
    wanted = {spec.var: spec for spec in fields}
    values: Values = {}
    for form in command.findall(f"{{{NS_DATA}}}x"):
        if form.get("type", "submit") != "submit":
            continue
        for field in form.findall(f"{{{NS_DATA}}}field"):
            var = field.get("var", "")
            spec = wanted.get(var)
            if spec is None:
                continue
            given = "\n".join(v.text or "" for v in field.findall(f"{{{NS_DATA}}}value"))
            if spec.kind == "boolean":
                given = "1" if given.strip().lower() in ("1", "true") else "0"
            values[var] = given
    return values


def _check_required(fields: tuple[Field, ...], values: Values) -> None:
    for spec in fields:
        if spec.required and not values.get(spec.var):
            raise CommandError(msg("Fill in “{label}”.", label=spec.label))
