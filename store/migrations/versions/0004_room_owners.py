"""Rooms' own managers, the subject pin, and mutes

- roommanager: the JIDs a room's owners named as its managers (`managers add`);
- room.pin (None: the configuration's announce.pin) and room.pin_tail (the tail the bot
  last wrote on the room's subject, so that it strips only its own);
- mute: who asked not to be sent the private link on joining, in a room or everywhere.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("room", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pin", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column(
            "pin_tail", sqlmodel.sql.sqltypes.AutoString(length=4096), nullable=True
        ))
    op.create_table(
        "roommanager",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room_id", sa.Integer(), nullable=False),
        sa.Column("jid", sqlmodel.sql.sqltypes.AutoString(length=3071), nullable=False),
        sa.Column("added_by", sqlmodel.sql.sqltypes.AutoString(length=3071), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["room_id"], ["room.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("room_id", "jid", name="uq_roommanager_jid"),
    )
    op.create_index(op.f("ix_roommanager_room_id"), "roommanager", ["room_id"], unique=False)
    op.create_table(
        "mute",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("room", sqlmodel.sql.sqltypes.AutoString(length=3071), nullable=False),
        sa.Column("person", sqlmodel.sql.sqltypes.AutoString(length=3071), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("room", "person", name="uq_mute_person"),
    )
    op.create_index(op.f("ix_mute_room"), "mute", ["room"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_mute_room"), table_name="mute")
    op.drop_table("mute")
    op.drop_index(op.f("ix_roommanager_room_id"), table_name="roommanager")
    op.drop_table("roommanager")
    with op.batch_alter_table("room", schema=None) as batch_op:
        batch_op.drop_column("pin_tail")
        batch_op.drop_column("pin")
