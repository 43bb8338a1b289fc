"""Generated stanzas from a stranger, against a real Prosody: invitations (XEP-0249 direct
and XEP-0045 mediated in shape, with odd attributes) and ad-hoc command IQs (XEP-0050, any
node, action, session id and form values). Nothing is stored, nothing is joined, every
invitation is decided and every IQ answered, and the bot's stream stays up (issue 12).

Drawn by Hypothesis with a fixed seed (generate phase only: no shrinking, no database), a
few hundred stanzas in a few seconds. Only invitations that cannot lead to a look are drawn
(rooms that do not exist, rooms of no served pool, addresses that are none): a look at an
existing room is a join by design, bounded by tests/integration/test_invitation_limits.py."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from slixmpp import JID
from slixmpp.exceptions import IqError, IqTimeout

from bot.metrics import INVITATIONS, METRICS
from tests.harness.prosody import Prosody
from tests.harness.xmpp_client import TestClient
from tests.integration.conftest import BotHandle, jid
from tests.integration.test_invitation_limits import Counted, until
from tests.integration.test_spoofing import snapshot

pytestmark = pytest.mark.xmpp

NS_CONFERENCE = "jabber:x:conference"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_COMMANDS = "http://jabber.org/protocol/commands"
NS_DATA = "jabber:x:data"
INVITATIONS_DRAWN = 160
IQS_DRAWN = 160
NODES = ["register", "update", "unregister", "list", "join", "leave", "attach", "detach",
         "audit", "show", "rooms", "", "nosuch", "http://jabber.org/protocol/commands"]
ACTIONS = ["execute", "complete", "cancel", "next", "prev", "", "EXECUTE", "complete "]

People = Callable[[str], Awaitable[TestClient]]

# Text XML can carry (no control characters, surrogates or U+FFFE/U+FFFF): what a client's
# server lets through. Anything else would end the stranger's own stream, not the bot's.
xml_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=80,
)


def strategies(muc: str, domain: str, admin_sid: str) -> dict[str, Any]:
    local = st.one_of(
        st.from_regex(r"[a-z0-9._-]{1,20}", fullmatch=True).map(lambda s: f"nosuch-{s}"),
        xml_text.filter(bool),
        st.sampled_from(["ᵃlpha", "ALPHA", "ﬁle", "a" * 1100, "a b", "a/b", "a@b", "\u2028x"]),
    )
    room = st.one_of(
        st.builds("{}@{}".format, local, st.just(muc)),
        st.builds("{}@{}".format, local, st.sampled_from([f"elsewhere.{domain}", domain,
                                                          "example.org", "[::1]"])),
        st.sampled_from([muc, domain, f"{muc}/nick", "", "@", f"@{muc}", f"x@{muc}/res",
                         f"addinbot@{domain}", f"admin@{domain}"]),
        xml_text,
    )
    attrs = st.dictionaries(
        st.sampled_from(["reason", "password", "continue", "thread", "jid", "from", "to"]),
        xml_text, max_size=4,
    )
    direct = st.builds(lambda r, a, kind: ("direct", r, a, kind), room, attrs,
                       st.sampled_from(["normal", "chat", "headline", None]))
    mediated = st.builds(lambda r, a, kind: ("mediated", r, a, kind), room, attrs,
                         st.sampled_from(["normal", None]))
    invitation = st.one_of(direct, direct, mediated)

    field = st.tuples(
        st.sampled_from(["name", "url", "pool", "room", "new_name", "force", "page", "n",
                         "FORM_TYPE", ""]).map(str) | xml_text,
        st.sampled_from(["text-single", "boolean", "list-single", "jid-single", "hidden",
                         None]),
        st.lists(xml_text, max_size=3),
    )
    form = st.tuples(st.sampled_from(["submit", "form", "cancel", "result", None]),
                     st.lists(field, max_size=4))
    iq = st.builds(
        lambda node, action, sid, forms: ("iq", node, action, sid, forms),
        # "list" is offered to anyone: the requests that get past the role check.
        st.one_of(st.just("list"), st.just("list"), st.sampled_from(NODES), xml_text),
        st.one_of(st.sampled_from(ACTIONS), st.sampled_from(ACTIONS), xml_text),
        st.one_of(st.none(), st.just(admin_sid), xml_text, st.just("x" * 300)),
        st.lists(form, max_size=2),
    )
    return {"invitation": invitation, "iq": iq}


def draw(muc: str, domain: str, admin_sid: str) -> tuple[list[Any], list[Any]]:
    made = strategies(muc, domain, admin_sid)
    invitations: list[Any] = []
    iqs: list[Any] = []

    @seed(20261130)
    @settings(max_examples=INVITATIONS_DRAWN // 8, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.lists(made["invitation"], min_size=8, max_size=8),
           st.lists(made["iq"], min_size=8, max_size=8))
    def collect(some_invitations: list[Any], some_iqs: list[Any]) -> None:
        invitations.extend(some_invitations)
        iqs.extend(some_iqs)

    collect()
    return invitations[:INVITATIONS_DRAWN], iqs[:IQS_DRAWN]


def invitation_stanza(client: TestClient, to: str, drawn: Any) -> Any:
    shape, room, attrs, kind = drawn
    msg = client.make_message(mto=JID(to))
    if kind is not None:
        msg.xml.set("type", kind)
    if shape == "direct":
        ET.SubElement(msg.xml, f"{{{NS_CONFERENCE}}}x", {**attrs, "jid": room})
    else:
        x = ET.SubElement(msg.xml, f"{{{NS_MUC_USER}}}x")
        invite = ET.SubElement(x, f"{{{NS_MUC_USER}}}invite", {"from": room, **attrs})
        ET.SubElement(invite, f"{{{NS_MUC_USER}}}reason").text = attrs.get("reason", "")
    return msg


def command_stanza(client: TestClient, to: JID, drawn: Any) -> Any:
    _iq, node, action, sid, forms = drawn
    iq = client.make_iq_set(ito=to)
    command = ET.SubElement(iq.xml, f"{{{NS_COMMANDS}}}command", {"node": node})
    if action:
        command.set("action", action)
    if sid is not None:
        command.set("sessionid", sid)
    for kind, fields in forms:
        x = ET.SubElement(command, f"{{{NS_DATA}}}x", {"type": kind} if kind else {})
        for var, field_kind, values in fields:
            attrs = {"var": var} | ({"type": field_kind} if field_kind else {})
            field = ET.SubElement(x, f"{{{NS_DATA}}}field", attrs)
            for value in values:
                ET.SubElement(field, f"{{{NS_DATA}}}value").text = value
    return iq


async def answered(iq: Any) -> str:
    """The IQ's answer: "result", or the error condition."""
    try:
        await iq.send(timeout=15)
    except IqError as exc:
        return str(exc.condition)
    except IqTimeout:
        return "timeout"
    return "result"


async def test_generated_invitations_and_form_requests_from_a_stranger_change_nothing(
    bot: BotHandle, people: People, prosody: Prosody
) -> None:
    counted = Counted(bot)
    service = counted.service
    edge = service.edge
    to = JID(edge.boundjid.full)
    admin = await people("admin")
    admin.register_plugin("xep_0050")
    opened = await admin.plugin["xep_0050"].send_command(to, "register", timeout=10)
    admin_sid = opened["command"]["sessionid"]
    mallory = await people("mallory")
    before = snapshot(bot)
    outcomes_before = sum(METRICS.invitations_seen(o) for o in INVITATIONS)
    accepted_before = METRICS.invitations_seen("accepted")
    invitations, iqs = draw(prosody.muc, prosody.domain, admin_sid)
    assert len(invitations) == INVITATIONS_DRAWN
    assert len(iqs) == IQS_DRAWN
    joins: list[str] = []
    join = edge.join

    def watched_join(room: str, nick: str) -> None:
        joins.append(room)
        join(room, nick)

    edge.join = watched_join  # type: ignore[method-assign]

    # Besides the drawn ones: the admin's open form, completed by the stranger every way.
    iqs += [("iq", node, action, admin_sid,
             [("submit", [("name", None, ["Mine"]), ("url", None, ["https://m.example/"])])])
            for action in ACTIONS for node in ("register", "list")]
    for drawn in invitations:
        invitation_stanza(mallory, jid(prosody, "addinbot"), drawn).send()
    answers = await asyncio.gather(*(answered(command_stanza(mallory, to, d)) for d in iqs))

    # Every invitation the edge handed over was decided, one outcome each.
    await mallory.plugin["xep_0199"].send_ping(JID(jid(prosody, "addinbot")), timeout=10)
    handed = counted.handed
    assert handed > INVITATIONS_DRAWN // 2  # most of them were invitations to decide
    print(f"\n{len(invitations)} invitations ({handed} handed to the bot), {len(iqs)} IQs: "
          + ", ".join(f"{a} {answers.count(a)}" for a in sorted(set(answers))))

    def outcomes() -> float:
        return sum(METRICS.invitations_seen(o) for o in INVITATIONS) - outcomes_before

    await counted.decided(handed)
    await until(lambda: outcomes() >= handed, "every invitation's outcome")
    assert outcomes() == handed
    assert METRICS.invitations_seen("accepted") == accepted_before
    assert joins == []
    assert not service.app.membership.wanted
    assert "timeout" not in answers
    assert "internal-server-error" not in answers
    assert snapshot(bot) == before  # nothing stored: no add-in, room or audit row

    # The stream stayed up all along, and the admin's open form is still the admin's.
    assert edge.online.is_set()
    fill = admin.plugin["xep_0004"].make_form("submit")
    fill.add_field(var="name", value="Stocks")
    fill.add_field(var="url", value="https://stocks.example.org/")
    done = await admin.plugin["xep_0050"].send_command(
        to, "register", action="complete", payload=fill, sessionid=admin_sid, timeout=10,
    )
    assert done["command"]["status"] == "completed"
    assert (await admin.ask(jid(prosody, "addinbot"), "list")).startswith(
        f"Add-ins in {prosody.muc} (1;"
    )
