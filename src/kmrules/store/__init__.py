"""Persistence: engines, migrations, tables, the audit log and API keys."""

from kmrules.store.database import default_sqlite_url, make_engine, migrate, read_only

__all__ = ["default_sqlite_url", "make_engine", "migrate", "read_only"]
