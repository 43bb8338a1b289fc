"""The bot's sentences in its readers' languages: gettext catalogs, read with Babel.

Every sentence is written in English in the code, with named placeholders
(`"Leaving {room}."`), and is its own gettext msgid: English needs no catalog. Another
language is one catalog file, bot/locale/<lang>/LC_MESSAGES/addinbot.po, read (and
compiled in memory, with Babel's public API) once: at start (`load_all`), or the first time
that language is asked for; README "Languages" says how to add one. Which language a
message gets is decided where it arrives (the sender's `xml:lang`, or the room's
`rooms.lang`) and handed down as a `Tr`.

Two ways to write a sentence:
- where the language is known (bot.commands.text and the forms): `tr.gettext(...)`,
  `tr.ngettext(...)`, which return the text;
- where it is not (a refusal raised deep in the operations): `msg(...)`, `msg_n(...)`, a
  `Msg` value said later, in the reader's language, with `tr.say(...)`; `str()` of one is
  its English.
The extraction (`python -m bot.locale update`) finds all four by name.
"""

from __future__ import annotations

import functools
import gettext
import io
import string
from collections.abc import Callable, Mapping
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

DOMAIN = "addinbot"
LOCALES = Path(__file__).parent / "locale"
ENGLISH_TAG = "en"

# The names the extraction looks for, with the arguments that are msgids (Babel's syntax).
KEYWORDS: Mapping[str, tuple[int, ...]] = {
    "gettext": (1,), "ngettext": (1, 2), "msg": (1,), "msg_n": (1, 2),
}


class Msg(str):
    """A sentence not yet said in a language: its msgid (English), its plural and count
    where it has one, and the values of its placeholders (which may be Msgs themselves).

    It is also the str of its English, so that whatever reads it as text (a log line, a
    test, a caller that does not know the reader's language) reads English."""

    text: str
    params: tuple[tuple[str, object], ...]
    plural: str | None
    n: int

    def __new__(
        cls, text: str, params: tuple[tuple[str, object], ...] = (),
        plural: str | None = None, n: int = 1,
    ) -> Msg:
        english = _say(ENGLISH_TRANSLATIONS, text, dict(params), plural, n, lambda m: str(m))
        self = super().__new__(cls, english)
        self.text, self.params, self.plural, self.n = text, params, plural, n
        return self


def msg(text: str, /, **params: object) -> Msg:
    return Msg(text, tuple(params.items()))


def msg_n(singular: str, plural: str, n: int, /, **params: object) -> Msg:
    """A sentence with a count: `{n}` in it is the count."""
    return Msg(singular, tuple(params.items()), plural, n)


def placeholders(text: str) -> frozenset[str]:
    """The named placeholders of a msgid or a translation: `{room}` → "room"."""
    return frozenset(
        field.split(".")[0].split("[")[0]
        for _literal, field, _spec, _conv in string.Formatter().parse(text)
        if field
    )


def _say(
    translations: gettext.NullTranslations, text: str, params: dict[str, object],
    plural: str | None, n: int, say: Callable[[Msg], str],
) -> str:
    if plural is None:
        english, translated = text, translations.gettext(text)
    else:
        english = text if n == 1 else plural
        translated = translations.ngettext(text, plural, n)
        params = {"n": n, **params}
    if not params:
        return translated
    values = {k: say(v) if isinstance(v, Msg) else v for k, v in params.items()}
    try:
        return translated.format_map(values)
    except (KeyError, IndexError, ValueError):  # a broken translation: say it in English
        return english.format_map(values)


class Tr:
    """What the bot says, in one language."""

    def __init__(self, lang: str, translations: gettext.NullTranslations) -> None:
        self.lang = lang
        self._translations = translations

    def gettext(self, text: str, /, **params: object) -> str:
        return _say(self._translations, text, params, None, 1, self.say)

    def ngettext(self, singular: str, plural: str, n: int, /, **params: object) -> str:
        """`{n}` in either text is the count."""
        return _say(self._translations, singular, params, plural, n, self.say)

    def say(self, said: str) -> str:
        """A Msg in this language; any other text as it is (a name, a URL)."""
        if not isinstance(said, Msg):
            return said
        return _say(self._translations, said.text, dict(said.params), said.plural, said.n,
                    self.say)

    def __repr__(self) -> str:
        return f"Tr({self.lang!r})"


ENGLISH_TRANSLATIONS = gettext.NullTranslations()
ENGLISH = Tr(ENGLISH_TAG, ENGLISH_TRANSLATIONS)


def catalog_path(lang: str) -> Path:
    return LOCALES / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def languages() -> frozenset[str]:
    """English, and every language with a catalog."""
    return _languages_in(LOCALES)


@functools.cache
def _languages_in(locales: Path) -> frozenset[str]:  # looked for once, not per message
    found = {path.parent.parent.name for path in locales.glob(f"*/LC_MESSAGES/{DOMAIN}.po")}
    return frozenset({ENGLISH_TAG, *found})


def best(tag: str | None) -> str:
    """The language with a catalog nearest to an `xml:lang` tag (`de-AT` → `de`), else
    English."""
    if not tag:
        return ENGLISH_TAG
    known = languages()
    wanted = tag.strip().replace("_", "-").lower()
    if wanted in known:
        return wanted
    primary = wanted.split("-")[0]
    return primary if primary in known else ENGLISH_TAG


@functools.cache
def _load(lang: str) -> Tr:
    if lang == ENGLISH_TAG:
        return ENGLISH
    with catalog_path(lang).open("rb") as po:
        catalog = read_po(po, locale=lang, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)  # fuzzy and untranslated entries are left out: English
    compiled.seek(0)
    return Tr(lang, gettext.GNUTranslations(compiled))


def tr(tag: str | None) -> Tr:
    """The sentences for an `xml:lang` tag (or a configured language), read once."""
    return _load(best(tag))


def load_all() -> None:
    """Read every catalog now (~35 ms each), at start, rather than on the event loop when
    the first message in that language arrives."""
    for lang in languages():
        _load(lang)
