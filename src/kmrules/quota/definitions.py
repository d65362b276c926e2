"""Quota and target-figure definitions (seed §2.2, §2.6, §2.11) as validated data.

A definition says how many places a scheme has per period and whether the number is a hard
maximum ("quota": refuse when full) or a soft target ("streefgetal": grant, signal excess).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kmrules.quota.periods import period_key, period_limit

__all__ = ["QuotaDefinition", "fact_value", "period_key", "period_limit"]


class QuotaDefinition(BaseModel):
    """One quota or target figure: its size, period, segment and the dates it governs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    title: str
    scheme: str
    kind: Literal["quota", "target"]
    limit: int = Field(gt=0)
    period: Literal["year", "quarter"]
    rollover: bool = False
    segment: dict[str, str] = Field(default_factory=dict)
    valid_from: date | None = None
    valid_until: date | None = None
    seed_section: str
    legal_basis: list[dict[str, str]]

    @model_validator(mode="after")
    def _check(self) -> QuotaDefinition:
        if self.rollover and self.period != "quarter":
            raise ValueError("rollover applies to quarterly tranches only (period: quarter)")
        if self.valid_from is not None and self.valid_until is not None and self.valid_until < self.valid_from:
            raise ValueError("valid_until lies before valid_from")
        return self

    def governs(self, application_date: date) -> bool:
        """True when an application on this date falls under this definition."""
        if self.valid_from is not None and application_date < self.valid_from:
            return False
        return self.valid_until is None or application_date <= self.valid_until

    def matches(self, facts: Mapping[str, object]) -> bool:
        """True when every segment fact of the definition has the required value in `facts`."""
        return all(_as_text(fact_value(facts, path)) == want for path, want in self.segment.items())


def fact_value(facts: Mapping[str, object], path: str) -> object:
    """Look up a dotted fact path in flat (`{"job.sector": ..}`) or nested facts; None if absent."""
    if path in facts:
        return facts[path]
    node: object = facts
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
