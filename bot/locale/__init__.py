"""The translation catalogs (<lang>/LC_MESSAGES/addinbot.po) and what keeps them in step
with the code: `python -m bot.locale update` (README "Languages").

The sentences are found two ways: in the source, by the names of the calls that say them
(bot.i18n.KEYWORDS: `tr.gettext`, `tr.ngettext`, `msg`, `msg_n`), as `pybabel extract`
finds them; and in the command declarations (bot.commands.direct and .room), whose help
lines, form titles, instructions and field labels are sentences too. The catalogs are read
by bot.i18n at run time; nothing here runs in the bot.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir

from bot import i18n

ROOT = Path(__file__).resolve().parent.parent.parent  # the checkout: bot/ and store/ in it
SOURCES = ("bot", "store")

Found = tuple[str, int, str | tuple[str, ...]]  # file, line, msgid or (singular, plural)


def in_source() -> Iterator[Found]:
    """The sentences the source says by name (what `pybabel extract -k …` finds)."""
    keywords = {name: spec if len(spec) > 1 else None for name, spec in i18n.KEYWORDS.items()}
    for source in SOURCES:
        for filename, line, message, _comments, _context in extract_from_dir(
            ROOT / source, keywords=keywords
        ):
            yield f"{source}/{filename}", line, message


def declared() -> Iterator[Found]:
    """The help lines, form titles, instructions and field labels of every command."""
    from bot.commands.direct import DIRECT  # the declarations, imported only when asked
    from bot.commands.room import ROOM

    for commands in (DIRECT, ROOM):
        for command in commands.commands.values():
            source = inspect.getsourcefile(command.handler) or ""
            where = str(Path(source).resolve().relative_to(ROOT))
            line = inspect.getsourcelines(command.handler)[1]
            texts = [command.summary]
            signatures = [command.signature]
            if command.form is not None:
                texts += [command.form.title, command.form.instructions]
                signatures.append(command.form.signature or command.signature)
            for signature in signatures:
                words = (*signature.required, *signature.optional, *signature.options,
                         *signature.flags)
                texts += [word.asked for word in words]
            for text in texts:
                if text:
                    yield where, line, text


def extracted() -> Iterator[Found]:
    yield from in_source()
    yield from declared()


def msgids() -> set[str]:
    """Every msgid the code uses (a plural's by its singular)."""
    return {m if isinstance(m, str) else m[0] for _file, _line, m in extracted()}


def template() -> Catalog:
    """The catalog of every sentence, untranslated (what `pybabel extract` writes)."""
    catalog = Catalog(project="addinbot", domain=i18n.DOMAIN, fuzzy=False)
    for filename, line, message in extracted():
        catalog.add(message, locations=[(filename, line)])
    return catalog
