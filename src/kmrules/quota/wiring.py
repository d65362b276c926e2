"""Quota definitions meet decisions: which definitions govern a case, and what the ledger's
answers do to the decision (outcome, quota findings, the receipt's ledger state).

Pure (no storage), so the decision service and the population simulation read the variant
files and derive case ids the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from pydantic import ValidationError

from kmrules.errors import Problem, RuleFileError
from kmrules.model import Decision, Finding, LegalBasis, QuotaFinding
from kmrules.quota.definitions import QuotaDefinition, fact_value
from kmrules.quota.errors import QuotaError
from kmrules.quota.models import Reservation

__all__ = [
    "LedgerContext",
    "QuotaDefinitionConflictError",
    "apply_ledger",
    "canonical_json",
    "derive_case_id",
    "governing",
    "parse_definitions",
    "undecided_segments",
]

CaseIdSource = Literal["request", "derived"]
QuotaResult = Literal["place_taken", "already_held", "full", "target_exceeded", "within_target", "dry_run"]


class QuotaDefinitionConflictError(QuotaError):
    """Two variants define one quota id differently: a place could not say which limit it counts against."""

    def __init__(self, quota_id: str) -> None:
        self.quota_id = quota_id
        super().__init__(f"quota {quota_id!r} is defined differently in two variants; give each its own id")


def canonical_json(value: Any) -> str:
    """One text per JSON value (sorted keys, no spaces), for hashing and comparing request bodies."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def derive_case_id(scheme: str, case_facts: Mapping[str, Any]) -> str:
    """The case id of a request that gives none: `case-` + 32 hex digits of SHA-256 over the
    canonical JSON of `{"scheme": ..., "case": {...}}`, where the case is the validated, flat
    case facts without the unknown (null or absent) ones. So the same application, however its
    JSON is spelled (key order, 5100 vs 5100.0, null vs absent), holds one place per quota."""
    known = {path: value for path, value in case_facts.items() if value is not None}
    digest = hashlib.sha256(canonical_json({"scheme": scheme, "case": known}).encode("utf-8"))
    return "case-" + digest.hexdigest()[:32]


def parse_definitions(raw: Iterable[Mapping[str, Any]]) -> list[QuotaDefinition]:
    """Validated definitions, one per id (a variant listed twice in a stack counts once)."""
    by_id: dict[str, QuotaDefinition] = {}
    for i, item in enumerate(raw):
        try:
            defn = QuotaDefinition.model_validate(item)
        except ValidationError as exc:  # the loader checks quotas; this guards hand-built rulebooks
            raise RuleFileError(
                [Problem(f"quotas[{i}].{'.'.join(map(str, e['loc']))}", e["msg"]) for e in exc.errors()]
            ) from exc
        seen = by_id.setdefault(defn.id, defn)
        if seen != defn:
            raise QuotaDefinitionConflictError(defn.id)
    return list(by_id.values())


def undecided_segments(raw: Iterable[Mapping[str, Any]], on: date, case_facts: Mapping[str, Any]) -> list[Finding]:
    """A finding per quota in force whose segment reads a fact the case does not give: without
    it nobody can tell whether the case takes a place, so the case must not slip past it."""
    out = []
    for defn in parse_definitions(raw):
        unknown = sorted(p for p in defn.segment if fact_value(case_facts, p) is None)
        if defn.governs(on) and unknown:
            out.append(
                Finding(
                    rule=f"QUOTA-{defn.id}",
                    title=f"{defn.title}: does the case count against it?",
                    result="undetermined",
                    legal_basis=[LegalBasis(**b) for b in defn.legal_basis],
                    explanation=f"The {defn.kind} {defn.id} counts only cases with "
                    + ", ".join(f"{p} = {defn.segment[p]}" for p in unknown)
                    + f"; missing {', '.join(unknown)}.",
                    missing=unknown,
                )
            )
    return out


def governing(raw: Iterable[Mapping[str, Any]], on: date, case_facts: Mapping[str, Any]) -> list[QuotaDefinition]:
    """The definitions that govern an application on `on` and whose segment the case matches."""
    return [d for d in parse_definitions(raw) if d.governs(on) and d.matches(case_facts)]


@dataclass(frozen=True)
class LedgerContext:
    """What the receipt says about the ledger besides the answers."""

    backend: str
    case_id: str
    case_id_source: CaseIdSource
    dry_run: bool
    what_if: bool


def apply_ledger(
    decision: Decision, defns: Sequence[QuotaDefinition], answers: Sequence[Reservation], ctx: LedgerContext
) -> Decision:
    """The decision after the ledger answered for a case the rules granted.

    All or nothing: if a hard quota is full the outcome is `refused` and the findings name the
    full quota(s); no place was taken anywhere. Otherwise the case is granted and every
    definition gets a finding (place taken / already held; target within or exceeded). In a
    dry run every finding is `dry_run` and says what a real decision would have done.
    """
    blocked = [a for a in answers if not a.granted]
    committed = not ctx.dry_run and not blocked
    findings: list[QuotaFinding] = []
    lines: list[dict[str, Any]] = []
    for defn, answer in zip(defns, answers, strict=True):
        would_take = answer.granted and not answer.already_held
        before = answer.used - 1 if would_take else answer.used
        after = answer.used if committed else before
        taken = committed and would_take
        lines.append(
            {
                "quota": defn.id,
                "kind": defn.kind,
                "period": answer.period_key,
                "limit": answer.limit,
                "used_before": before,
                "used_after": after,
                "place_no": answer.place_no if taken or answer.already_held else None,
                "taken": taken,
                "already_held": answer.already_held,
            }
        )
        if ctx.dry_run:
            findings.append(_finding(defn, answer, "dry_run", before, "Dry run, no place taken: " + _would(answer)))
        elif blocked and not answer.granted:
            findings.append(_finding(defn, answer, "full", answer.used, _full(defn, answer)))
        elif committed:
            findings.append(_committed(defn, answer))
    receipt = decision.receipt.model_copy(
        update={
            "ledger": {
                "backend": ctx.backend,
                "case_id": ctx.case_id,
                "case_id_source": ctx.case_id_source,
                "dry_run": ctx.dry_run,
                "what_if": ctx.what_if,
                "quotas": lines,
            }
        }
    )
    outcome = "refused" if blocked else decision.outcome
    return decision.model_copy(update={"outcome": outcome, "quota": findings, "receipt": receipt})


def _finding(defn: QuotaDefinition, answer: Reservation, result: QuotaResult, used: int, text: str) -> QuotaFinding:
    return QuotaFinding(
        quota=defn.id,
        kind=defn.kind,
        limit=answer.limit,
        used=used,
        period=answer.period_key,
        seed_section=defn.seed_section,
        result=result,
        explanation=text,
    )


def _name(defn: QuotaDefinition, answer: Reservation) -> str:
    return f"{defn.title} [{defn.id}, period {answer.period_key}]"


def _full(defn: QuotaDefinition, answer: Reservation) -> str:
    return (
        f"{_name(defn, answer)} is full: {answer.used:,} of {answer.limit:,} places used. The criteria grant "
        f"this case, but the quota refuses it (seed §{defn.seed_section}); no place was taken in any quota."
    )


def _committed(defn: QuotaDefinition, answer: Reservation) -> QuotaFinding:
    used, limit = answer.used, answer.limit
    if defn.kind == "quota":
        if answer.already_held:
            text = f"{_name(defn, answer)}: this case already holds place {answer.place_no}; no second place taken"
            return _finding(defn, answer, "already_held", used, f"{text} ({used:,} of {limit:,} used).")
        text = f"{_name(defn, answer)}: place {answer.place_no} taken; {used:,} of {limit:,} places now used."
        return _finding(defn, answer, "place_taken", used, text)
    held = f"this case holds place {answer.place_no}" if answer.already_held else f"place {answer.place_no} taken"
    if answer.exceeded:
        text = (
            f"{_name(defn, answer)}: {held}; {used:,} against a target of {limit:,}, exceeded by "
            f"{used - limit:,}. A target does not refuse: the case is granted and the excess is signalled."
        )
        return _finding(defn, answer, "target_exceeded", used, text)
    text = f"{_name(defn, answer)}: {held}; {used:,} of {limit:,}, within the target."
    return _finding(defn, answer, "within_target", used, text)


def _would(answer: Reservation) -> str:
    if answer.already_held:
        return f"the case already holds place {answer.place_no} ({answer.used:,} of {answer.limit:,} used)."
    if not answer.granted:
        return f"the quota is full ({answer.used:,} of {answer.limit:,}), so the case would be refused."
    if answer.exceeded:
        return f"a place would be taken and the target exceeded ({answer.used:,} against {answer.limit:,})."
    return f"a place would be taken ({answer.used:,} of {answer.limit:,})."
