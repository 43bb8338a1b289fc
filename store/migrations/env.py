"""Alembic environment: the engine is handed over by store.migrate, never read from a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine
from sqlmodel import SQLModel

import store.models  # noqa: F401  (registers the tables on the metadata)

MIGRATION_LOCK = 0x61646D67  # "admg"
engine: Engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Several processes starting at once on one database migrate one at a time:
            # the later ones find the schema at its head and do nothing.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
        context.run_migrations()
    connection.commit()
