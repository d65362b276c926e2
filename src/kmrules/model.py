"""Decision types: what a caseworker reads and what the API returns (pinned field names)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Outcome = Literal["granted", "refused", "undetermined"]
FindingResult = Literal["pass", "fail", "not_applicable", "undetermined"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LegalBasis(_Out):
    """A seed section and/or a public URL."""

    seed: str | None = None
    url: str | None = None
    note: str | None = None


class Finding(_Out):
    """One criterion's result on this case, with the values compared and why."""

    rule: str
    title: str
    version: str | None = None
    result: FindingResult
    observed: Any = None
    required: Any = None
    legal_basis: list[LegalBasis]
    explanation: str
    missing: list[str] = Field(default_factory=list)


class Amount(_Out):
    """A computed amount (a date or a sum) with its basis."""

    id: str
    title: str
    value: Any = None
    unit: str
    legal_basis: list[LegalBasis]
    parameters: dict[str, Any] = Field(default_factory=dict)
    missing: list[str] = Field(default_factory=list)


class ParameterUsed(_Out):
    """A parameter value the decision used, with its period and references."""

    value: Any
    unit: str | None = None
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    references: list[str]
    changed_by: list[str] = Field(default_factory=list)


class RuleVersionUsed(_Out):
    """Which dated version of a criterion was applied and why."""

    version: str | None = None
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    reason: str


class Receipt(_Out):
    """Enough to reproduce the decision: engine, rules hash, variant, date, values used."""

    engine: str
    kmrules_version: str
    rules_hash: str
    variant: str
    variants: list[str]
    decision_date: dt.date
    parameters: dict[str, ParameterUsed]
    rule_versions: dict[str, RuleVersionUsed]
    ledger: dict[str, Any] | None = None


class QuotaFinding(_Out):
    """A quota or target seen by this decision (issue: quota and target figures)."""

    quota: str
    kind: Literal["quota", "target"]
    limit: int
    used: int
    period: str
    seed_section: str
    result: Literal["place_taken", "already_held", "full", "target_exceeded", "within_target", "dry_run"]
    explanation: str


class Decision(_Out):
    """The answer to one request."""

    outcome: Outcome
    scheme: str
    variant: str
    findings: list[Finding]
    missing: list[str]
    amounts: dict[str, Amount]
    receipt: Receipt
    quota: list[QuotaFinding] = Field(default_factory=list)
    counterfactuals: dict[str, Any] = Field(default_factory=dict)

    def failing(self) -> list[str]:
        """Ids of the criteria that failed."""
        return [f.rule for f in self.findings if f.result == "fail"]
