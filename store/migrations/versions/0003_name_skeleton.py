"""addin.name_skeleton: no two add-ins of a pool may look alike (UTS #39 skeleton)

Each add-in's skeleton is computed (bot.names.name_skeleton) and kept unique per pool.
Where two add-ins of a pool already look alike (say "Stocks" and "Ѕtocks" with a Cyrillic
Ѕ, registered before this check), nothing is dropped and the upgrade does not stop: the
one registered later is renamed "<name> (#<id>)", which no longer looks like the other, and
the rename is written to the log (a warning) and to the audit log ("rename", by addinbot
via bot, with the old name and the one it imitated), where an admin sees it and may rename
or unregister it. Its rooms keep it. Downgrading drops the column and keeps the new names.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from bot.names import MAX_NAME, name_key, name_skeleton

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

log = logging.getLogger("addinbot")

_ADDIN = sa.table(
    "addin", sa.column("id", sa.Integer), sa.column("pool_id", sa.Integer),
    sa.column("name", sa.String), sa.column("name_key", sa.String),
    sa.column("name_skeleton", sa.String), sa.column("revision", sa.Integer),
)
_POOL = sa.table("pool", sa.column("id", sa.Integer), sa.column("name", sa.String))
_AUDIT = sa.table(
    "auditevent", sa.column("at", sa.DateTime(timezone=True)), sa.column("actor", sa.String),
    sa.column("via", sa.String), sa.column("action", sa.String), sa.column("pool", sa.String),
    sa.column("addin", sa.String), sa.column("detail", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("addin", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "name_skeleton", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True
        ))
    rekey(op.get_bind())
    with op.batch_alter_table("addin", schema=None) as batch_op:
        batch_op.alter_column(
            "name_skeleton", existing_type=sqlmodel.sql.sqltypes.AutoString(length=256),
            nullable=False,
        )
        batch_op.create_unique_constraint(
            "uq_addin_pool_skeleton", ["pool_id", "name_skeleton"]
        )


def rekey(bind: sa.Connection) -> None:
    """Every add-in's skeleton, oldest first; a later look-alike of one is renamed."""
    pools = dict(bind.execute(sa.select(_POOL.c.id, _POOL.c.name)).all())
    seen: dict[tuple[int, str], str] = {}  # (pool, skeleton) -> the name that has it
    rows = bind.execute(
        sa.select(_ADDIN.c.id, _ADDIN.c.pool_id, _ADDIN.c.name).order_by(_ADDIN.c.id)
    ).all()
    for addin_id, pool_id, name in rows:
        new_name, skeleton = name, name_skeleton(name)
        imitated = seen.get((pool_id, skeleton))
        suffix = f" (#{addin_id})"
        while (pool_id, skeleton) in seen:
            new_name = f"{name[:MAX_NAME - len(suffix)]}{suffix}"
            skeleton, suffix = name_skeleton(new_name), f"{suffix[:-1]}#)"
        seen[(pool_id, skeleton)] = new_name
        values: dict[str, object] = {"name_skeleton": skeleton}
        if imitated is not None:
            values |= {"name": new_name, "name_key": name_key(new_name),
                       "revision": _ADDIN.c.revision + 1}
            pool = pools.get(pool_id)
            log.warning("upgrade 0003: “%s” in %s looks like “%s”: renamed “%s”",
                        name, pool, imitated, new_name)
            bind.execute(sa.insert(_AUDIT).values(
                at=datetime.now(UTC), actor="addinbot", via="bot", action="rename", pool=pool,
                addin=new_name,
                detail=f"was “{name}”, which looks like “{imitated}” (schema upgrade 0003)",
            ))
        bind.execute(sa.update(_ADDIN).where(_ADDIN.c.id == addin_id).values(**values))


def downgrade() -> None:
    with op.batch_alter_table("addin", schema=None) as batch_op:
        batch_op.drop_constraint("uq_addin_pool_skeleton", type_="unique")
        batch_op.drop_column("name_skeleton")
