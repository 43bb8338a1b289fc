"""The add-in store: tables, their queries, the unit of work and migrations (SQLite by
default, or PostgreSQL). The rest of the bot holds a `Store` and calls the functions of
store.addins, store.rooms, store.receipts and store.audit; it never sees SQLAlchemy."""

from store.handle import Store

__all__ = ["Store"]
