"""Keep the catalogs in step with the code (README "Languages").

    python -m bot.locale update      # re-extract every sentence; update every catalog
    python -m bot.locale init fr     # a new language: bot/locale/fr/LC_MESSAGES/addinbot.po
    python -m bot.locale check       # what a catalog still lacks (exit 1 if anything)

New sentences arrive in each catalog untranslated; tests/unit/test_i18n.py fails until
German has them all.
"""

from __future__ import annotations

import sys

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

from bot import i18n
from bot.locale import msgids, template


def _write(lang: str, catalog: Catalog) -> None:
    path = i18n.catalog_path(lang)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as po:
        write_po(po, catalog, width=100, sort_output=False, ignore_obsolete=True,
                 include_previous=True)
    print(f"{path}: {len(catalog)} sentences")


def _read(lang: str) -> Catalog:
    with i18n.catalog_path(lang).open("rb") as po:
        return read_po(po, locale=lang, domain=i18n.DOMAIN)


def update() -> None:
    new = template()
    for lang in sorted(i18n.languages() - {i18n.ENGLISH_TAG}):
        catalog = _read(lang)
        catalog.update(new)
        _write(lang, catalog)


def init(lang: str) -> None:
    if i18n.catalog_path(lang).exists():
        sys.exit(f"{i18n.catalog_path(lang)} exists; use `update`")
    catalog = Catalog(locale=lang, domain=i18n.DOMAIN, project="addinbot", fuzzy=False)
    catalog.update(template())
    _write(lang, catalog)


def check() -> int:
    """Every sentence of the code translated in every catalog, else exit status 1."""
    wanted = msgids()
    missing = 0
    for lang in sorted(i18n.languages() - {i18n.ENGLISH_TAG}):
        catalog = _read(lang)
        for msgid in sorted(wanted):
            found = catalog.get(msgid)
            strings = () if found is None else (
                found.string if isinstance(found.string, tuple) else (found.string,)
            )
            if found is None or found.fuzzy or not all(strings):
                missing += 1
                print(f"{lang}: not translated: {msgid!r}")
    return 1 if missing else 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["update"] and len(argv) == 1:
        update()
        return 0
    if argv[:1] == ["init"] and len(argv) == 2:
        init(argv[1])
        return 0
    if argv[:1] == ["check"] and len(argv) == 1:
        return check()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
