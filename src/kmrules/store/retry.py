"""Which database errors are worth retrying: lock waits and serialisation conflicts."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

_PG_TRANSIENT = {"40001", "40P01", "55P03"}
"""serialization_failure, deadlock_detected, lock_not_available."""
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy")


def is_transient(exc: DBAPIError) -> bool:
    """True when the same transaction may succeed if simply run again."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate in _PG_TRANSIENT
    message = str(exc.orig).lower()
    return any(text in message for text in _SQLITE_TRANSIENT)
