"""API keys: only a sha256 hash of each key is stored; the key itself is shown once."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, select

from kmrules.store.tables import api_keys


class ApiKeyRecord(BaseModel):
    """One stored API key (its hash, never the key)."""

    model_config = ConfigDict(frozen=True)

    id: str
    key_hash: str
    role: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """A revoked key authenticates nobody."""
        return self.revoked_at is None


def hash_api_key(key: str) -> str:
    """The stored form of a key: sha256, hex."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_api_key(conn: Connection, role: str, *, key: str | None = None) -> tuple[str, ApiKeyRecord]:
    """Store a new key for a role; returns (the key, to hand out once; its record)."""
    plain = key if key is not None else secrets.token_urlsafe(32)
    record = ApiKeyRecord(
        id=str(uuid.uuid4()),
        key_hash=hash_api_key(plain),
        role=role,
        created_at=datetime.now(UTC),
        revoked_at=None,
    )
    conn.execute(api_keys.insert().values(**record.model_dump()))
    return plain, record


def find_api_key(conn: Connection, key: str) -> ApiKeyRecord | None:
    """The record of a presented key (active or revoked), or None if unknown."""
    stmt = select(api_keys).where(api_keys.c.key_hash == hash_api_key(key))
    row = conn.execute(stmt).mappings().first()
    return ApiKeyRecord.model_validate(dict(row)) if row is not None else None


def revoke_api_key(conn: Connection, key_id: str) -> bool:
    """Revoke a key by id; False if it was unknown or already revoked."""
    stmt = (
        api_keys.update()
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return conn.execute(stmt).rowcount == 1
