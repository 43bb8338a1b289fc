"""Translations (issue 14, item 5): every sentence the code says is in every catalog, with the
same placeholders; the language is chosen per message (xml:lang) and per room (rooms.lang);
English stays the msgids, byte for byte."""

from __future__ import annotations

import ast
import gettext
import shutil
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po

from bot import addins, i18n
from bot.app import App
from bot.commands.registry import table_outcome
from bot.commands.text import (
    invitation_cooling,
    invitation_room_refused,
    invitations_all_busy,
    invitations_too_many,
)
from bot.errors import CommandError
from bot.i18n import ENGLISH, Msg, Tr, msg, msg_n, placeholders
from bot.locale import msgids
from bot.urls import validate_url
from bot.values import Actor, Kind, Place, Presence, Sender
from bot.values import Message as Said
from bot.xmpp.panel import PANEL
from store import Store
from tests.fakes import FakeEdge
from tests.unit.test_dispatch import MEMBER_DM, OWNER_DM, make_bot

POOL = "conference.localhost"
ROOM = f"dev@{POOL}"
LANGS = sorted(i18n.languages() - {i18n.ENGLISH_TAG})
ROOT = Path(__file__).resolve().parent.parent.parent


def catalog(lang: str) -> Catalog:
    with i18n.catalog_path(lang).open("rb") as po:
        return read_po(po, locale=lang, domain=i18n.DOMAIN)


def forms(message: Message) -> tuple[str, ...]:
    string = message.string
    return string if isinstance(string, tuple) else (string,)


def english_forms(message: Message) -> tuple[str, ...]:
    return message.id if isinstance(message.id, tuple) else (message.id,)


def test_german_is_a_catalog() -> None:
    assert "de" in LANGS


@pytest.mark.parametrize("lang", LANGS)
def test_every_sentence_of_the_code_is_translated(lang: str) -> None:
    """A sentence added anywhere (`tr.gettext`, `msg`, a command's help line or form label)
    fails here until `python -m bot.locale update` brings it in and it is translated."""
    found = catalog(lang)
    untranslated = sorted(
        msgid for msgid in msgids()
        if (entry := found.get(msgid)) is None or entry.fuzzy or not all(forms(entry))
    )
    assert untranslated == [], f"{lang}: run `python -m bot.locale update` and translate"


@pytest.mark.parametrize("lang", LANGS)
def test_translations_keep_the_placeholders_and_the_edges(lang: str) -> None:
    for entry in catalog(lang):
        if not entry.id or not all(forms(entry)):
            continue
        english = english_forms(entry)
        wanted = frozenset().union(*(placeholders(text) for text in english))
        for text in forms(entry):
            assert placeholders(text) == wanted, (entry.id, text)
            # A leading space (" Did you mean …") or none, as in English: sentences are
            # joined with the text around them.
            assert text[:1].isspace() == english[0][:1].isspace(), (entry.id, text)
            assert text.format(**dict.fromkeys(wanted, "x"))  # no stray brace


def test_the_catalogs_msgids_are_the_codes() -> None:
    """No translation waits for a sentence the code no longer says (update drops them)."""
    used = msgids()
    for lang in LANGS:
        ids = [entry.id if isinstance(entry.id, str) else entry.id[0]
               for entry in catalog(lang) if entry.id]
        assert sorted(set(ids) - used) == [], f"{lang}: run `python -m bot.locale update`"


def test_the_language_nearest_a_tag() -> None:
    assert [i18n.best(tag) for tag in ("de", "de-AT", "DE_ch", "fr", "", None, "en-GB")] == [
        "de", "de", "de", "en", "en", "en", "en",
    ]
    assert i18n.tr("de-DE").lang == "de"
    assert i18n.tr("de") is i18n.tr("de-AT")  # read once


def test_a_refusal_raised_deep_is_said_in_the_readers_language() -> None:
    with pytest.raises(CommandError) as caught:
        validate_url("ftp://example.org/")
    german = i18n.tr("de")
    assert caught.value.said(german) == "URL abgelehnt: nur http und https sind erlaubt."
    assert str(caught.value) == "URL refused: only http and https are allowed."
    assert caught.value.reason == "URL refused: only http and https are allowed."


def test_a_msg_is_its_english_and_nests() -> None:
    said = msg("URL refused: {why}.", why=msg("it has no host"))
    assert said == "URL refused: it has no host."
    assert isinstance(said, Msg)
    assert said.text == "URL refused: {why}."
    assert i18n.tr("de").say(said) == "URL abgelehnt: sie hat keinen Host."
    pages = msg_n("There is only {n} page.", "There are only {n} pages.", 2)
    assert pages == "There are only 2 pages."
    assert i18n.tr("de").say(pages) == "Es gibt nur 2 Seiten."
    assert ENGLISH.say("a name, not a sentence") == "a name, not a sentence"


def test_a_broken_translation_falls_back_to_english() -> None:
    class Broken(gettext.NullTranslations):
        def gettext(self, message: str) -> str:
            return "Verlasse {raum}."

    assert Tr("xx", Broken()).gettext("Leaving {room}.", room="r@x") == "Leaving r@x."


def test_a_language_is_one_catalog_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding a language: one .po file where the others are; nothing else changes."""
    locales = tmp_path / "locale"
    shutil.copytree(i18n.LOCALES / "de", locales / "fr")
    po = locales / "fr" / "LC_MESSAGES" / "addinbot.po"
    po.write_text(po.read_text(encoding="utf-8").replace(
        'msgstr "Verlasse {room}."', 'msgstr "Je quitte {room}."'
    ), encoding="utf-8")
    monkeypatch.setattr(i18n, "LOCALES", locales)
    assert i18n.languages() == {"en", "fr"}
    assert i18n.tr("fr-CA").gettext("Leaving {room}.", room="r@x") == "Je quitte r@x."


def test_rooms_lang_is_checked_at_start(settings) -> None:
    assert settings().rooms.lang == "en"
    assert settings(rooms={"lang": "DE"}).rooms.lang == "de"
    assert settings(rooms={"lang": "de_AT"}).rooms.lang == "de"
    with pytest.raises(ValueError, match="no translation for 'xx'; the bot speaks de, en"):
        settings(rooms={"lang": "xx"})


# --- through the app, with the fake edge ----------------------------------------------------


async def ask(app: App, edge: FakeEdge, text: str, lang: str | None) -> str:
    app.on_message(Said(Kind.DIRECT, text, jid="someone@localhost", lang=lang))
    return (await edge.take("direct")).text


async def test_a_direct_message_is_answered_in_its_xml_lang(store: Store, settings) -> None:
    edge = FakeEdge()
    app = App(settings(), store, edge)
    await app.start()
    try:
        assert (await ask(app, edge, "help", "de")).startswith(
            "help [<command>] — listet die Befehle, die Sie ausführen dürfen"
        )
        assert await ask(app, edge, "lsit", "de-AT") == (
            "Unbekannter Befehl „lsit“. Meinten Sie „list“? Befehle: help, list, mute, unmute."
        )
        assert await ask(app, edge, "register x https://a.example.org/", "de") == (
            "Nur ein addinbot-Admin darf register ausführen."
        )
        assert await ask(app, edge, "list page 0", "de") == (
            "Bitte eine Zahl von 1 bis 1000000 angeben, nicht „0“. "
            "Aufruf: list [pool <pool>] [page <page>]"
        )
        # The same command, English or no xml:lang: the English of PRODUCT.md, unchanged.
        for lang in (None, "en", "fr"):
            assert await ask(app, edge, "lsit", lang) == (
                "Unknown command “lsit”. Did you mean “list”? Commands: help, list, mute, unmute."
            )
        # A kept answer is kept per language.
        assert await ask(app, edge, "list", "de") == "In conference.localhost sind keine " \
            "Add-ins registriert."
        assert await ask(app, edge, "list", None) == (
            "No add-ins are registered in conference.localhost."
        )
    finally:
        await app.stop()


async def test_a_room_speaks_its_configured_language(store: Store, settings) -> None:
    edge = FakeEdge()
    app = App(settings(rooms={"lang": "de", "autojoin": [ROOM]}), store, edge)
    admin = Actor("admin@localhost", "dm")

    addins.register(store, admin, pool=POOL, name="Wiki", url="https://wiki.example.org/")
    await app.start()
    try:
        app.rooms.joining(ROOM, "AddinBot")
        app.on_presence(Presence(ROOM, "AddinBot", True, codes=frozenset({110})))
        app.on_message(Said(Kind.DIRECT, f"attach {ROOM} Wiki", jid="admin@localhost"))
        assert (await edge.take("direct")).text == (
            f"{ROOM} now has the add-in “Wiki”: https://wiki.example.org/"
        )  # the admin wrote without xml:lang: English
        said = await edge.take("room")
        assert said.text == "Das Add-in dieses Raums ist jetzt „Wiki“: https://wiki.example.org/"
        app.on_presence(Presence(ROOM, "carol", True, jid="carol@localhost"))
        told = await edge.take("private")
        assert told.text == "Das Add-in dieses Raums ist „Wiki“: https://wiki.example.org/"
        app.on_message(Said(Kind.ROOM, "!addin", room=ROOM, nick="carol"))
        assert (await edge.take("room")).text == told.text
        # Privately through the room: the message's xml:lang, else the room's language.
        app.on_message(Said(Kind.ROOM_PRIVATE, "detach", room=ROOM, nick="carol", lang="en"))
        refused = (await edge.take("private")).text
        assert refused == f"Only the owners and admins of {ROOM} may do that."
        app.on_message(Said(Kind.ROOM_PRIVATE, "detach", room=ROOM, nick="carol"))
        refused = (await edge.take("private")).text
        assert refused == f"Nur die Besitzer und Admins von {ROOM} dürfen das."
    finally:
        await app.stop()


# --- what came with the forms, the invitation limits and the command line -------------------


async def test_a_managers_help_by_direct_message_in_german(store: Store, settings) -> None:
    bot = make_bot(store, settings)
    german = i18n.tr("de")
    helped = await bot.dispatcher.run(Place.DIRECT, OWNER_DM, "help", german)
    assert helped is not None
    lines = helped.text.splitlines()
    assert lines[lines.index(f"In Ihrem Raum ({ROOM}) geben Sie ein:") + 1] == (
        "!addin show — nennt das Add-in dieses Raums und seine URL"
    )
    english = await bot.say("help", OWNER_DM)
    assert f"In your room ({ROOM}), type:" in english.splitlines()


def test_the_forms_tables_in_german(store: Store, settings) -> None:
    """The Control Panel's Rooms and Audit answers: note, labels, columns and text."""
    config = settings(rooms={"autojoin": [ROOM]})
    admin = Actor("admin@localhost", "adhoc")
    addins.register(store, admin, pool=POOL, name="Wiki", url="https://wiki.example.org/")
    addins.attach(store, admin, room=ROOM, name="Wiki")
    german = i18n.tr("de")
    rooms = PANEL.operations["rooms"].run(config, store, admin, {}, german)
    assert rooms.note == "Der Bot bedient 0 Räume und kennt 1 weitere."
    assert rooms.table is not None
    assert [label for _var, label in rooms.table.columns] == ["Raum", "Add-in", "URL", "Bedient"]
    assert rooms.table.rows[0][3] == "nein (nicht betreten)"
    assert rooms.text_label == "Räume"
    changes = PANEL.operations["audit"].run(config, store, admin, {}, german)
    assert changes.note == "Die letzten 2 Änderungen, die neueste zuerst."
    assert changes.text_label == "Änderungen"
    assert changes.text[0].startswith("Wann: ")
    # English: main's words, byte for byte.
    assert PANEL.operations["rooms"].run(config, store, admin, {}).note == (
        "The bot serves 0 rooms and knows 1 more."
    )
    cut = table_outcome("Note.", (("a", "A"),), [("x" * 300,)] * 3, 2500, german)
    assert cut.note == "Note. Die ersten 2 werden gezeigt, 1 weiterer nicht."
    assert cut.text_label == "Liste"


def test_invitation_refusals_are_said_in_the_inviters_language() -> None:
    german = i18n.tr("de")
    refusals = [
        invitations_too_many(5, 86_400, 30),
        invitations_all_busy(1, 600, 200),
        invitation_cooling(ROOM, 30, 600),
        invitation_room_refused(ROOM, "forbidden"),
    ]
    assert [str(said) for said in refusals] == [  # English: as main says it
        "Too many invitations from you: the bot looks at 5 rooms every 24 h for one person. "
        "Ask an addinbot admin to invite it, or try again in 30 s; the bot says nothing more "
        "until then.",
        "the bot has looked at 1 room for invitations in the last 10 min, as many as it will. "
        "Ask an addinbot admin to invite it, or try again in 4 min.",
        f"the bot looked at {ROOM} 30 s ago and looks at a room at most once every 10 min. "
        "Try again in 10 min, or ask an addinbot admin to invite it.",
        f"{ROOM} has banned the bot. Lift the ban and invite it again.",
    ]
    assert [german.say(said) for said in refusals] == [
        "Zu viele Einladungen von Ihnen: Der Bot sieht sich für eine Person 5 Räume alle 24 h "
        "an. Bitten Sie einen addinbot-Admin, ihn einzuladen, oder versuchen Sie es in 30 s "
        "noch einmal; bis dahin sagt der Bot nichts mehr.",
        "der Bot hat sich in den letzten 10 min für Einladungen schon 1 Raum angesehen, mehr "
        "sieht er sich nicht an. Bitten Sie einen addinbot-Admin, ihn einzuladen, oder "
        "versuchen Sie es in 4 min noch einmal.",
        f"der Bot hat sich {ROOM} vor 30 s angesehen und sieht sich einen Raum höchstens "
        "einmal alle 10 min an. Versuchen Sie es in 10 min noch einmal, oder bitten Sie "
        "einen addinbot-Admin, ihn einzuladen.",
        f"{ROOM} hat den Bot gesperrt. Heben Sie die Sperre auf und laden Sie ihn noch "
        "einmal ein.",
    ]


async def test_a_rooms_own_commands_in_german(store: Store, settings) -> None:
    """Named managers, mute: answered in the asker's language; English as main says it."""
    bot = make_bot(store, settings)
    german = i18n.tr("de")

    async def ask(text: str, sender: Sender = OWNER_DM, tr: Tr = german) -> str:
        said = await bot.dispatcher.run(Place.DIRECT, sender, text, tr)
        assert said is not None
        return said.text

    assert await ask(f"managers {ROOM}") == (
        f"{ROOM} hat keine benannten Verwalter: Seine Besitzer und Admins verwalten ihn. "
        "Ein Besitzer benennt einen mit `managers add <jid>`."
    )
    assert await ask(f"managers {ROOM} add pat@localhost") == (
        f"pat@localhost darf jetzt in {ROOM} Add-ins zuweisen und entfernen. Benannte "
        f"Verwalter von {ROOM} (neben seinen Besitzern und Admins): pat@localhost."
    )
    assert await ask(f"managers {ROOM} add pat@localhost") == (
        f"pat@localhost ist schon Verwalter von {ROOM}."
    )
    assert await ask(f"managers {ROOM} add pat", MEMBER_DM) == (
        f"Nur die Besitzer von {ROOM} dürfen das."
    )
    assert await ask("mute all") == (  # a sender nobody vouches for: nothing kept
        "Dieser Raum zeigt dem Bot weder Ihre Adresse noch eine Teilnehmer-ID, daher kann er "
        "Sie nicht von der nächsten Person unterscheiden, die Ihren Spitznamen annimmt; "
        "nichts wurde geändert. Senden Sie stattdessen `mute all` direkt an den Bot."
    )
    olivia = Sender("olivia@localhost", person="jid:olivia@localhost")  # as bot.app says
    assert await ask("mute all", olivia) == (
        "Ihnen wird der Link des Add-ins nicht mehr privat geschickt, wenn Sie einen Raum "
        "betreten; mit `unmute all` bekommen Sie ihn wieder. Was in einem Raum gesagt wird, "
        "erreicht Sie weiterhin."
    )
    assert await ask("mute all", olivia, ENGLISH) == (
        "You are already not sent the add-in's link when you join any room."
    )


async def test_an_owner_sends_the_bot_away_in_the_rooms_language(
    store: Store, settings
) -> None:
    edge = FakeEdge()
    app = App(settings(rooms={"lang": "de"}), store, edge)
    await app.start()
    try:
        app.on_message(Said(Kind.DIRECT, f"join {ROOM}", jid="admin@localhost"))
        assert (await edge.take("direct")).text.startswith(f"Joining {ROOM}")
        app.rooms.joining(ROOM, "AddinBot")
        app.on_presence(Presence(ROOM, "olivia", True, "owner", "moderator", "olivia@localhost"))
        app.on_presence(Presence(ROOM, "AddinBot", True, codes=frozenset({110})))
        app.on_message(Said(Kind.ROOM, "!addin leave", room=ROOM, nick="olivia"))
        assert (await edge.take("room")).text == (  # the room has no add-in to keep
            "Auf Wiedersehen: Ein Besitzer dieses Raums hat den Bot gebeten zu gehen. Das "
            "`join` eines addinbot-Admins oder eine neue Einladung eines Besitzers holt den "
            "Bot zurück."
        )
    finally:
        await app.stop()


# --- a guard for sentences written past the catalogs ---------------------------------------

# What carries a sentence to a reader: its first argument must come from a catalog (tr.…,
# msg(…), a text function), never a literal written in place.
CARRIERS = frozenset({
    "CommandError", "BadWords", "NotAllowed", "Reply", "Outcome", "XMPPError",
    "send_direct", "send_private", "send_room",
})


def _literal_sentences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
        if name not in CARRIERS:
            continue
        if name.startswith("send_"):
            args = node.args  # (to[, nick], text[, link])
        elif name in ("XMPPError", "NotAllowed"):
            args = node.args[1:2]  # (condition or metric label, text)
        else:
            args = node.args[:1]
        for arg in args:
            if isinstance(arg, ast.JoinedStr) or (
                isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                and any(ch.isalpha() for ch in arg.value)
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


# The command line's own modules: what only a shell reads (`addin import`'s refusals, a file
# that cannot be read) stays English, as the command line does (README "Languages").
ENGLISH_ONLY = frozenset({"bot/cli.py", "bot/bulk.py"})


def test_no_sentence_is_written_past_the_catalogs() -> None:
    """`Reply(f"…")`, `CommandError("…")`: a sentence no catalog has. Write
    `tr.gettext("…", name=…)` or `msg("…", name=…)` (README "Languages")."""
    written = [
        where for folder in ("bot", "store") for path in sorted((ROOT / folder).rglob("*.py"))
        if "migrations" not in path.parts
        and str(path.relative_to(ROOT)) not in ENGLISH_ONLY
        for where in _literal_sentences(path)
    ]
    assert written == [], "sentences not from a catalog (README: Languages)"
