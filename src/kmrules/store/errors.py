"""Typed storage errors."""

from __future__ import annotations

from kmrules.errors import KmrulesError


class StoreError(KmrulesError):
    """Base of every storage error."""


class UnsupportedDatabaseError(StoreError):
    """The database URL names a backend kmrules does not support (only SQLite and PostgreSQL)."""


class DuplicateIdempotencyKeyError(StoreError):
    """An audit row with this idempotency key exists already; the transaction was aborted."""

    def __init__(self, idempotency_key: str) -> None:
        self.idempotency_key = idempotency_key
        super().__init__(f"an audit record with idempotency key {idempotency_key!r} exists")
