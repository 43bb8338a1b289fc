"""The add-in store: tables, sessions and migrations (SQLite by default, or PostgreSQL)."""
