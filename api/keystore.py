"""API keys and roles over the store's hashed key table (no HTTP here: the CLI uses it too).

Why a small cache: every request presents its key, and a database round trip per request
would dominate a decision's cost; a verified key is trusted for a few seconds, so revoking a
key takes effect within `ttl_seconds` on every worker.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Literal, get_args

from sqlalchemy import Engine, func, select

from kmrules.store.database import read
from kmrules.store.keys import ApiKeyRecord, create_api_key, find_api_key, hash_api_key, revoke_api_key
from kmrules.store.tables import api_keys

Role = Literal["caseworker", "policy", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
Permission = Literal["decide", "read", "compare", "simulate", "quota_release", "keys"]

PERMISSIONS: dict[str, frozenset[str]] = {
    "caseworker": frozenset({"decide", "read"}),
    "policy": frozenset({"compare", "simulate", "read"}),
    "admin": frozenset({"decide", "read", "compare", "simulate", "quota_release", "keys"}),
}
"""What each role may do (issue 5): caseworkers decide, policy officers compare and simulate,
admins may do everything including releasing quota places and managing keys."""

MAX_KEY_LENGTH = 512


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id and role (never the key itself)."""

    key_id: str
    role: str

    def may(self, permission: str) -> bool:
        """True when the role grants the permission."""
        return permission in PERMISSIONS.get(self.role, frozenset())


class KeyStore:
    """Create, check, list and revoke API keys in the server's database."""

    def __init__(self, engine: Engine, *, ttl_seconds: float = 5.0) -> None:
        self._engine = engine
        self._ttl = ttl_seconds
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def create(self, role: str) -> tuple[str, ApiKeyRecord]:
        """A new key for a role; the plain key is returned once and stored only as a hash."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        with self._engine.begin() as conn:
            return create_api_key(conn, role)

    def cached(self, key: str) -> Principal | None:
        """The principal of a recently verified key, without touching the database."""
        if not key or len(key) > MAX_KEY_LENGTH:
            return None
        with self._lock:
            hit = self._cache.get(hash_api_key(key))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def authenticate(self, key: str) -> Principal | None:
        """The principal of an active key, or None for an unknown, revoked or malformed key."""
        if not key or len(key) > MAX_KEY_LENGTH:
            return None
        digest = hash_api_key(key)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        record = read(self._engine, lambda conn: find_api_key(conn, key))
        if record is None or not record.active or record.role not in ROLES:
            with self._lock:
                self._cache.pop(digest, None)
            return None
        principal = Principal(key_id=record.id, role=record.role)
        with self._lock:
            if len(self._cache) > 10_000:  # only real keys get here; bound it anyway
                self._cache.clear()
            self._cache[digest] = (now + self._ttl, principal)
        return principal

    def any_active(self) -> bool:
        """True when at least one unrevoked key exists (the first start creates one otherwise)."""
        stmt = select(func.count()).select_from(api_keys).where(api_keys.c.revoked_at.is_(None))
        return read(self._engine, lambda conn: int(conn.execute(stmt).scalar_one()) > 0)

    def list(self) -> list[ApiKeyRecord]:
        """Every key record (hashes, roles, dates), oldest first."""
        stmt = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        return read(
            self._engine,
            lambda conn: [ApiKeyRecord.model_validate(dict(row)) for row in conn.execute(stmt).mappings()],
        )

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False when unknown or already revoked. Caches expire within the TTL."""
        with self._engine.begin() as conn:
            done = revoke_api_key(conn, key_id)
        with self._lock:
            self._cache = {d: hit for d, hit in self._cache.items() if hit[1].key_id != key_id}
        return done
