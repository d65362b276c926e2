"""The append-only audit log: insert and read, nothing else (the database refuses the rest).

`append_audit` takes a Connection so it can run inside another transaction, e.g. inside
`Ledger.reserve(..., on_commit=...)`, where the place and the audit row commit together.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, RowMapping, select
from sqlalchemy.exc import IntegrityError

from kmrules.store.driver import DriverInsert
from kmrules.store.errors import DuplicateIdempotencyKeyError
from kmrules.store.tables import audit_log


class AuditRecord(BaseModel):
    """One audit row as written."""

    model_config = ConfigDict(frozen=True)

    id: str
    created_at: datetime
    kind: str
    idempotency_key: str | None
    case_id: str | None
    request_json: str
    response_json: str
    actor_role: str


_INSERT = DriverInsert(audit_log)


def append_audit(
    conn: Connection,
    *,
    kind: str,
    request_json: str,
    response_json: str,
    actor_role: str,
    case_id: str | None = None,
    idempotency_key: str | None = None,
) -> AuditRecord:
    """Insert one audit row in the caller's transaction and return it."""
    record = AuditRecord(
        id=str(uuid.uuid4()),
        created_at=datetime.now(UTC),
        kind=kind,
        idempotency_key=idempotency_key,
        case_id=case_id,
        request_json=request_json,
        response_json=response_json,
        actor_role=actor_role,
    )
    try:
        # compiled once per dialect, run on the driver's connection (see store.driver: why)
        _INSERT.execute(conn, record.model_dump())
    except IntegrityError as exc:
        if idempotency_key is not None and "idempotency_key" in str(exc.orig):
            raise DuplicateIdempotencyKeyError(idempotency_key) from exc
        raise
    return record


def get_audit(conn: Connection, record_id: str) -> AuditRecord | None:
    """One audit row by id."""
    row = conn.execute(select(audit_log).where(audit_log.c.id == record_id)).mappings().first()
    return _record(row) if row is not None else None


def find_audit_by_idempotency_key(conn: Connection, idempotency_key: str) -> AuditRecord | None:
    """The row written under an idempotency key, so a retried request can get its first answer."""
    stmt = select(audit_log).where(audit_log.c.idempotency_key == idempotency_key)
    row = conn.execute(stmt).mappings().first()
    return _record(row) if row is not None else None


def list_audit(
    conn: Connection,
    *,
    case_id: str | None = None,
    kind: str | None = None,
    limit: int = 100,
) -> list[AuditRecord]:
    """Audit rows, newest first, optionally for one case and/or one kind."""
    stmt = select(audit_log).order_by(audit_log.c.created_at.desc(), audit_log.c.id).limit(limit)
    if case_id is not None:
        stmt = stmt.where(audit_log.c.case_id == case_id)
    if kind is not None:
        stmt = stmt.where(audit_log.c.kind == kind)
    return [_record(row) for row in conn.execute(stmt).mappings()]


def _record(row: RowMapping) -> AuditRecord:
    return AuditRecord.model_validate(dict(row))
