"""store/ owns data access: nothing else of the bot imports SQLAlchemy, SQLModel or Alembic,
and nothing in bot/ or store/ reaches into SQLAlchemy's private internals. (import-linter
contracts will say the first more fully; this is the plain check until then.)"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATABASE_LIBRARIES = {"sqlalchemy", "sqlmodel", "alembic"}
PRIVATE = re.compile(
    r"positiontup|bind_processor|driver_connection|\.dbapi_connection\b|\.binds\b|driver_error"
)


def imported(path: Path) -> set[str]:
    """The top-level packages a module imports, anywhere in it (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.partition(".")[0])
    return found


def test_only_store_imports_the_database_libraries() -> None:
    outside = {
        str(path.relative_to(ROOT)): sorted(imported(path) & DATABASE_LIBRARIES)
        for path in sorted((ROOT / "bot").rglob("*.py"))
    }
    assert {path: found for path, found in outside.items() if found} == {}
    assert imported(ROOT / "store" / "unit.py") & DATABASE_LIBRARIES  # the check sees them


def test_no_private_sqlalchemy_internals_in_the_product() -> None:
    used = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in ("bot", "store")
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert used == []
