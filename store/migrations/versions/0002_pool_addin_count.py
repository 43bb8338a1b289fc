"""pool.addin_count: each pool's number of add-ins, kept by register and unregister

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pool", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("addin_count", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE pool SET addin_count = (SELECT count(*) FROM addin WHERE addin.pool_id = pool.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("pool", schema=None) as batch_op:
        batch_op.drop_column("addin_count")
