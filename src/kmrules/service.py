"""The stateful layer the API and the CLI call: quota places, the audit log, idempotency.

`kmrules.decide` stays pure; the I/O happens here. Every decision (granted, refused,
undetermined, dry run) gets an audit row, written in the same transaction as the quota
places it takes, so a crash at any point leaves both or neither.

Case ids: a request's `case_id` if it gives one; otherwise `derive_case_id` (a hash of the
scheme and the validated case), so the same application never takes two places.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection

from kmrules.decide import Backend, decide_prepared, get_rulebook, prepare
from kmrules.errors import KmrulesError, Problem, RequestError
from kmrules.model import Decision
from kmrules.quota.definitions import QuotaDefinition, period_key
from kmrules.quota.ledger import Ledger
from kmrules.quota.models import Released, Reservation, Usage
from kmrules.quota.wiring import (
    LedgerContext,
    apply_ledger,
    canonical_json,
    derive_case_id,
    governing,
    parse_definitions,
    undecided_segments,
)
from kmrules.rulebook import Rulebook
from kmrules.store.audit import AuditRecord, append_audit, find_audit_by_idempotency_key, get_audit
from kmrules.store.checkpoint import WalCheckpointer
from kmrules.store.database import default_sqlite_url, make_engine, migrate, read, sqlite_path
from kmrules.store.errors import DuplicateIdempotencyKeyError

__all__ = [
    "DecisionNotFoundError",
    "DecisionService",
    "IdempotencyConflictError",
    "RecordedDecision",
    "UnknownQuotaError",
]

DECISION = "decision"
RELEASE = "release"
UNSPECIFIED_ROLE = "unspecified"
_MAX_KEY, _MAX_ROLE = 200, 50  # the audit_log column sizes


class DecisionNotFoundError(KmrulesError):
    """No decision with this id in the audit log."""

    def __init__(self, decision_id: str) -> None:
        self.decision_id = decision_id
        super().__init__(f"no decision with id {decision_id!r}")


class IdempotencyConflictError(KmrulesError):
    """An idempotency key was used before with a different request body."""

    def __init__(self, idempotency_key: str) -> None:
        self.idempotency_key = idempotency_key
        super().__init__(f"idempotency key {idempotency_key!r} was used for a different request; use a new key")


class UnknownQuotaError(KmrulesError):
    """A quota id that no variant of the rulebook defines."""

    def __init__(self, quota_id: str, known: list[str]) -> None:
        self.quota_id = quota_id
        self.known = known
        super().__init__(f"unknown quota {quota_id!r}; known quotas: {', '.join(known) or 'none'}")


class RecordedDecision(BaseModel):
    """A decision as written to the audit log; `idempotent_replay` when an earlier answer is returned."""

    model_config = ConfigDict(frozen=True)

    id: str
    created_at: datetime
    decision: Decision
    idempotent_replay: bool
    decision_json: str
    """`decision` as the audit log holds it (JSON text), so an answer need not serialise it again."""


class DecisionService:
    """Decisions with quota places and an audit trail, on SQLite (embedded) or PostgreSQL."""

    def __init__(self, *, database_url: str, rules_dir: Path | None = None, backend: Backend = "durable") -> None:
        self._book = get_rulebook(rules_dir)  # --rules / KMRULES_RULES_DIR / the package's; validated now
        self._definitions = parse_definitions(q for v in self._book.variants.values() for q in v.quotas)
        self._backend: Backend = backend
        path = sqlite_path(database_url)
        # SQLite: checkpoints on a thread of their own, never inside a decision's commit
        self._engine = make_engine(database_url, sqlite_autocheckpoint=0 if path else None)
        try:
            migrate(self._engine)
        except BaseException:
            self._engine.dispose()
            raise
        self._checkpointer = WalCheckpointer(path).start() if path else None
        self._ledger = Ledger(self._engine)
        self._ledger.ensure_statistics()  # PostgreSQL: a ledger that holds places but was never analyzed

    @classmethod
    def embedded(cls, data_dir: Path, rules_dir: Path | None = None) -> DecisionService:
        """The single-machine setup: one SQLite file in `data_dir`."""
        return cls(database_url=default_sqlite_url(data_dir), rules_dir=rules_dir)

    @property
    def database_backend(self) -> str:
        """`sqlite` or `postgresql`."""
        return self._engine.dialect.name

    @property
    def rulebook(self) -> Rulebook:
        """The rules this service decides with (loaded and validated once, at start)."""
        return self._book

    @property
    def ledger(self) -> Ledger:
        """The quota ledger (for health checks: `ledger.verify()`)."""
        return self._ledger

    def close(self) -> None:
        """Close the database connections (after a last SQLite checkpoint)."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._engine.dispose()

    def __enter__(self) -> DecisionService:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- decisions ----------------------------------------------------------------------

    def decide(
        self, request: dict[str, Any], *, idempotency_key: str | None = None, actor_role: str | None = None
    ) -> RecordedDecision:
        """Decide, take the quota places the decision needs, and audit it, atomically.

        With an `idempotency_key` seen before, the first answer is returned (and no second
        place taken); the same key with a different request is an IdempotencyConflictError.
        """
        _check_length("idempotency_key", idempotency_key, _MAX_KEY)
        _check_length("actor_role", actor_role, _MAX_ROLE)
        body = canonical_json(request)
        if idempotency_key is not None and (replay := self._replay(idempotency_key, body)) is not None:
            return replay
        try:
            return self._decide(request, body, idempotency_key, actor_role or UNSPECIFIED_ROLE)
        except DuplicateIdempotencyKeyError:
            # a concurrent call with the same key committed first; answer as it did
            replay = self._replay(idempotency_key, body) if idempotency_key is not None else None
            if replay is None:
                raise
            return replay

    def get_decision(self, decision_id: str) -> RecordedDecision:
        """A decision from the audit log, by the id it was returned with."""
        record = self._read(lambda conn: get_audit(conn, decision_id))
        if record is None or record.kind != DECISION:
            raise DecisionNotFoundError(decision_id)
        return _recorded(record, replay=False)

    def _decide(self, request: dict[str, Any], body: str, key: str | None, role: str) -> RecordedDecision:
        book = self._book
        prepared = prepare(book, request)
        decision = decide_prepared(book, prepared, self._backend)
        envelope, case_facts, on = prepared.envelope, prepared.case_facts, prepared.on
        stack, rules = prepared.stack, prepared.rules
        unsure = undecided_segments(rules.quotas, on, case_facts) if decision.outcome == "granted" else []
        if unsure:  # a quota may or may not count this case: not a grant until the facts are given
            decision = decision.model_copy(
                update={
                    "outcome": "undetermined",
                    "findings": [*decision.findings, *unsure],
                    "missing": sorted({*decision.missing, *(m for f in unsure for m in f.missing)}),
                }
            )
        defns = governing(rules.quotas, on, case_facts) if decision.outcome == "granted" else []
        ctx = LedgerContext(
            backend=self.database_backend,
            case_id=envelope.case_id or derive_case_id(envelope.scheme, case_facts),
            case_id_source="request" if envelope.case_id else "derived",
            dry_run=envelope.dry_run or stack.is_what_if,  # a what-if never takes a real place
            what_if=stack.is_what_if,
        )
        written: list[RecordedDecision] = []

        def audit(conn: Connection, answers: list[Reservation]) -> None:
            final = apply_ledger(decision, defns, answers, ctx) if defns else decision
            record = append_audit(
                conn,
                kind=DECISION,
                request_json=body,
                response_json=(text := final.model_dump_json()),
                actor_role=role,
                case_id=ctx.case_id,
                idempotency_key=key,
            )
            written[:] = [
                RecordedDecision(
                    id=record.id,
                    created_at=record.created_at,
                    decision=final,
                    idempotent_replay=False,
                    decision_json=text,
                )
            ]

        if defns:
            self._ledger.reserve_all(defns, on, ctx.case_id, dry_run=ctx.dry_run, on_result=audit)
        else:  # no quota governs the case: the audit row alone, one statement, atomic by itself
            self._ledger.write_alone(lambda conn: audit(conn, []))
        return written[0]

    def _replay(self, key: str, body: str) -> RecordedDecision | None:
        record = self._read(lambda conn: find_audit_by_idempotency_key(conn, key))
        if record is None:
            return None
        if record.kind != DECISION or record.request_json != body:
            raise IdempotencyConflictError(key)
        return _recorded(record, replay=True)

    # -- quotas -------------------------------------------------------------------------

    def quota_definitions(self) -> list[QuotaDefinition]:
        """Every quota and target figure defined by a variant of the rulebook, by id."""
        return sorted(self._definitions, key=lambda d: d.id)

    def quota_status(self, quota_id: str | None = None, *, today: date | None = None) -> list[Usage]:
        """Use per quota and period: every period holding places, and for each definition the
        current period (or, outside its validity, the nearest period it governs) even if empty."""
        defns = self._select(quota_id)
        lines = {(u.quota_id, u.period_key): u for u in self._ledger.usage_all(defns)}
        for defn in defns:
            key = period_key(defn, _nearest_governed(defn, today or date.today()))
            if (defn.id, key) not in lines:
                lines[(defn.id, key)] = self._ledger.usage(defn, key)
        return [lines[k] for k in sorted(lines)]

    def release(self, case_id: str, quota_id: str | None = None, *, actor_role: str | None = None) -> list[Released]:
        """Give back a case's places (e.g. the application was withdrawn), with an audit row
        (kind "release") in the same transaction; NothingHeldError if it holds none."""
        _check_length("actor_role", actor_role, _MAX_ROLE)

        def audit(conn: Connection, released: list[Released]) -> None:
            append_audit(
                conn,
                kind=RELEASE,
                request_json=canonical_json({"case_id": case_id, "quota_id": quota_id}),
                response_json=json.dumps([r.model_dump(mode="json") for r in released]),
                actor_role=actor_role or UNSPECIFIED_ROLE,
                case_id=case_id,
            )

        return self._ledger.release(case_id, quota_id, on_result=audit)

    def _select(self, quota_id: str | None) -> list[QuotaDefinition]:
        defns = self.quota_definitions()
        if quota_id is None:
            return defns
        chosen = [d for d in defns if d.id == quota_id]
        if not chosen:
            raise UnknownQuotaError(quota_id, [d.id for d in defns])
        return chosen

    def _read(self, query: Callable[[Connection], AuditRecord | None]) -> AuditRecord | None:
        return read(self._engine, query)


def _recorded(record: AuditRecord, *, replay: bool) -> RecordedDecision:
    return RecordedDecision(
        id=record.id,
        created_at=record.created_at,
        decision=Decision.model_validate_json(record.response_json),
        idempotent_replay=replay,
        decision_json=record.response_json,
    )


def _nearest_governed(defn: QuotaDefinition, day: date) -> date:
    if defn.valid_from is not None and day < defn.valid_from:
        return defn.valid_from
    if defn.valid_until is not None and day > defn.valid_until:
        return defn.valid_until
    return day


def _check_length(name: str, value: str | None, most: int) -> None:
    if value is not None and not 1 <= len(value) <= most:
        raise RequestError([Problem(name, f"must be 1 to {most} characters")])
