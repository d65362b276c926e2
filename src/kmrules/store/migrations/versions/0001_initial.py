"""Initial schema: quota ledger, append-only audit log, API keys.

Revision ID: 0001
Revises:
Create Date: 2024-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = sa.text("released_at IS NULL")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)

_PG_APPEND_ONLY = """
CREATE FUNCTION kmrules_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$
"""


def upgrade() -> None:
    """Create the tables, their partial unique indexes and the append-only guard."""
    op.create_table(
        "quota_counters",
        sa.Column("quota_id", sa.String(100), nullable=False),
        sa.Column("period_key", sa.String(16), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("quota_id", "period_key", name=op.f("pk_quota_counters")),
        sa.CheckConstraint("used >= 0", name=op.f("ck_quota_counters_used_not_negative")),
    )
    op.create_table(
        "quota_places",
        sa.Column("id", _ID, nullable=False, autoincrement=True),
        sa.Column("quota_id", sa.String(100), nullable=False),
        sa.Column("period_key", sa.String(16), nullable=False),
        sa.Column("case_id", sa.String(200), nullable=False),
        sa.Column("place_no", sa.Integer(), nullable=False),
        sa.Column("reserved_at", _TS, nullable=False),
        sa.Column("released_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_places")),
        sa.ForeignKeyConstraint(
            ["quota_id", "period_key"],
            ["quota_counters.quota_id", "quota_counters.period_key"],
            name=op.f("fk_quota_places_quota_id_period_key_quota_counters"),
        ),
        sa.CheckConstraint("place_no > 0", name=op.f("ck_quota_places_place_no_positive")),
    )
    op.create_index(
        op.f("uq_quota_places_active_case"),
        "quota_places",
        ["quota_id", "case_id"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )
    op.create_index(
        op.f("uq_quota_places_active_place"),
        "quota_places",
        ["quota_id", "period_key", "place_no"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )
    op.create_index(op.f("ix_quota_places_case_id"), "quota_places", ["case_id"])

    op.create_table(
        "audit_log",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("case_id", sa.String(200), nullable=True),
        sa.Column("request_json", sa.Text(), nullable=False),
        sa.Column("response_json", sa.Text(), nullable=False),
        sa.Column("actor_role", sa.String(50), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_audit_log_idempotency_key")),
    )
    op.create_index(op.f("ix_audit_log_case_id"), "audit_log", ["case_id"])
    op.create_index(op.f("ix_audit_log_created_at"), "audit_log", ["created_at"])
    _guard_audit_log()

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(50), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )


def downgrade() -> None:
    """Drop everything the upgrade created."""
    op.drop_table("api_keys")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS kmrules_audit_log_append_only()")
    op.drop_table("audit_log")
    op.drop_table("quota_places")
    op.drop_table("quota_counters")


def _guard_audit_log() -> None:
    """Refuse UPDATE and DELETE on audit_log in the database itself, not only in code."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_APPEND_ONLY)
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION kmrules_audit_log_append_only()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER audit_log_no_{action.lower()} BEFORE {action} ON audit_log "
            "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
        )
