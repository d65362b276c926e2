"""Table definitions (SQLAlchemy Core). The Alembic migrations create them; nothing else does.

Why the ledger cannot exceed a limit: every reservation and release first locks the
`quota_counters` row of its period (SELECT ... FOR UPDATE on PostgreSQL; BEGIN IMMEDIATE
takes the single write lock on SQLite), decides against `used`, and changes `used` and
`quota_places` in the same transaction. Partial unique indexes over active places back
this up: one active place per (quota, case) and per (quota, period, place number).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_ACTIVE = text("released_at IS NULL")
_ID = BigInteger().with_variant(Integer(), "sqlite")

quota_counters = Table(
    "quota_counters",
    metadata,
    Column("quota_id", String(100), nullable=False),
    Column("period_key", String(16), nullable=False),
    Column("used", Integer, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("quota_id", "period_key"),
    CheckConstraint("used >= 0", name="used_not_negative"),
)

quota_places = Table(
    "quota_places",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("quota_id", String(100), nullable=False),
    Column("period_key", String(16), nullable=False),
    Column("case_id", String(200), nullable=False),
    Column("place_no", Integer, nullable=False),
    Column("reserved_at", UtcDateTime(), nullable=False),
    Column("released_at", UtcDateTime(), nullable=True),
    ForeignKeyConstraint(
        ["quota_id", "period_key"],
        ["quota_counters.quota_id", "quota_counters.period_key"],
    ),
    CheckConstraint("place_no > 0", name="place_no_positive"),
    Index(
        "uq_quota_places_active_case",
        "quota_id",
        "case_id",
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    ),
    Index(
        "uq_quota_places_active_place",
        "quota_id",
        "period_key",
        "place_no",
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    ),
    Index("ix_quota_places_case_id", "case_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("kind", String(50), nullable=False),
    Column("idempotency_key", String(200), nullable=True),
    Column("case_id", String(200), nullable=True),
    Column("request_json", Text, nullable=False),
    Column("response_json", Text, nullable=False),
    Column("actor_role", String(50), nullable=False),
    UniqueConstraint("idempotency_key"),
    Index("ix_audit_log_case_id", "case_id"),
    Index("ix_audit_log_created_at", "created_at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("key_hash", String(64), nullable=False),
    Column("role", String(50), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
    UniqueConstraint("key_hash"),
)
