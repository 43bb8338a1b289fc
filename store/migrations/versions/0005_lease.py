"""lease: which process serves which room, holds the desk, and is alive (several processes)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lease",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=3071), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=True),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key"),
    )


def downgrade() -> None:
    op.drop_table("lease")
