"""Add-in names that pass for others (issue 12, finding 10): one script per name, and one
add-in per UTS #39 confusable skeleton in a pool; the upgrade to 0003 for the names that
were registered before."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import text

from bot import addins
from bot.errors import CommandError
from bot.values import Actor
from store import Store
from store.migrate import alembic_config, current_revision

POOL, OTHER = "conference.localhost", "chat.localhost"
ADMIN = Actor("admin@localhost", "dm")
URL = "https://stocks.example.org/"
CYRILLIC_S, GREEK_O = "\u0405", "\u03bf"  # Ѕ, ο


@pytest.mark.parametrize(("name", "scripts"), [
    (f"{CYRILLIC_S}tocks", "Cyrillic, Latin"),
    (f"St{GREEK_O}cks", "Greek, Latin"),
    ("Stocks \u05e9\u05dc\u05d5\u05dd", "Hebrew, Latin"),  # a right-to-left word beside
])
def test_a_name_mixing_scripts_is_refused(store: Store, name: str, scripts: str) -> None:
    with pytest.raises(CommandError) as refused:
        addins.register(store, ADMIN, pool=POOL, name=name, url=URL)
    assert refused.value.reason == (
        f"Add-in name mixes scripts ({scripts}); write it in one, so that no name can pass "
        "for another."
    )
    assert addins.audit(store) == []


@pytest.mark.parametrize("name", ["Ｓｔｏｃｋｓ", "\u0405\u0442\u043e\u0441\u043a\u0455"])
def test_a_look_alike_of_an_add_in_of_the_pool_is_refused(store: Store, name: str) -> None:
    addins.register(store, ADMIN, pool=POOL, name="Stocks", url=URL)
    with pytest.raises(CommandError, match="“Stocks”"):
        addins.register(store, ADMIN, pool=POOL, name=name, url=URL)
    addins.register(store, ADMIN, pool=POOL, name="Wiki", url=URL)
    with pytest.raises(CommandError, match=r"looks like “Stocks”|named “Stocks”"):
        addins.rename(store, ADMIN, pool=POOL, name="Wiki", new_name=name)
    addins.register(store, ADMIN, pool=OTHER, name=name, url=URL)  # another pool: its own
    assert [i[0] for i in addins.list_addins(store, pool=POOL).items] == ["Stocks", "Wiki"]


def test_names_of_one_script_and_the_usual_mixes_are_accepted(store: Store) -> None:
    for name in ("Stock Ticker 2", "Тикер", "東京タワー", "Wiki 日本語テスト", "שלום", "ΑΒΓ"):
        addins.register(store, ADMIN, pool=POOL, name=name, url=URL)
    assert addins.list_addins(store, pool=POOL).total == 6


def test_the_upgrade_to_0003_renames_a_look_alike_registered_before_and_says_so(
    store: Store,
) -> None:
    """Rows as version 0002 wrote them, two of them look-alikes of a third: the later ones
    are renamed (logged, audited), nothing is lost, and the names keep working."""
    command.downgrade(alembic_config(store.engine), "0002")
    rows = ((POOL, ("Stocks", f"{CYRILLIC_S}tocks", "Ｓｔｏｃｋｓ", "Wiki")), (OTHER, ("Stocks",)))
    ids: dict[tuple[str, str], int] = {}
    with store.engine.begin() as connection:
        for pool, names in rows:
            pool_id = connection.execute(
                text("INSERT INTO pool (name, addin_count) VALUES (:name, :n) RETURNING id"),
                {"name": pool, "n": len(names)},
            ).scalar_one()
            for name in names:
                ids[(pool, name)] = connection.execute(text(
                    "INSERT INTO addin (pool_id, name, name_key, url, created_by, created_at,"
                    " revision) VALUES (:pool, :name, :key, :url, 'admin', :at, 1) RETURNING id"
                ), {"pool": pool_id, "name": name, "key": name.casefold(), "url": URL,
                    "at": datetime.now(UTC)}).scalar_one()
    store.upgrade()
    assert current_revision(store.engine) == "0004"
    cyrillic = f"{CYRILLIC_S}tocks (#{ids[(POOL, f'{CYRILLIC_S}tocks')]})"
    wide = f"Ｓｔｏｃｋｓ (#{ids[(POOL, 'Ｓｔｏｃｋｓ')]})"
    assert sorted(i[0] for i in addins.list_addins(store, pool=POOL).items) == sorted(
        ["Stocks", cyrillic, wide, "Wiki"]
    )
    assert [i[0] for i in addins.list_addins(store, pool=OTHER).items] == ["Stocks"]
    renames = [(e.actor, e.via, e.action, e.addin, e.detail) for e in addins.audit(store)]
    assert sorted(renames) == sorted([
        ("addinbot", "bot", "rename", cyrillic,
         f"was “{CYRILLIC_S}tocks”, which looks like “Stocks” (schema upgrade 0003)"),
        ("addinbot", "bot", "rename", wide,
         "was “Ｓｔｏｃｋｓ”, which looks like “Stocks” (schema upgrade 0003)"),
    ])
    assert addins.show(store, pool=POOL, name=cyrillic).name == cyrillic
    with pytest.raises(CommandError, match="“Stocks”"):
        addins.register(store, ADMIN, pool=POOL, name="STOCKS", url=URL)
    command.downgrade(alembic_config(store.engine), "0002")  # and back again
    store.upgrade()
    assert addins.list_addins(store, pool=POOL).total == 4
