"""The answers a ledger gives: a reservation, a release, a usage line, an allocation report."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["quota", "target"]


class Reservation(BaseModel):
    """What a reserve (or a dry-run peek) answered for one case in one quota period."""

    model_config = ConfigDict(frozen=True)

    quota_id: str
    kind: Kind
    period_key: str
    case_id: str
    place_no: int | None
    granted: bool
    already_held: bool
    used: int = Field(description="places held in the period after this call")
    limit: int = Field(description="the limit of the period (with rollover: incl. rolled places)")
    exceeded: bool = Field(description="used > limit; only a target figure can get there")


class Released(BaseModel):
    """One place given back by a release."""

    model_config = ConfigDict(frozen=True)

    quota_id: str
    period_key: str
    case_id: str
    place_no: int
    released_at: datetime


class Usage(BaseModel):
    """How full one quota period is."""

    model_config = ConfigDict(frozen=True)

    quota_id: str
    period_key: str
    used: int
    limit: int
    kind: Kind
    remaining: int


class PeriodAllocation(BaseModel):
    """One period of a simulated allocation."""

    period_key: str
    limit: int
    taken: int
    refused: int
    filled_on: date | None


class QuotaAllocation(BaseModel):
    """How one quota or target figure fared in a simulated population."""

    quota_id: str
    kind: Kind
    limit: int
    filled_on: date | None = Field(
        description="quota: date of the first refusal; target: first date the figure was exceeded"
    )
    taken: int
    refused: int
    exceeded_by: int = Field(description="target: places taken beyond the limit; quota: 0")
    taken_by_segment: dict[str, dict[str, int]] = Field(description="fact path -> fact value -> places taken")
    refused_by_segment: dict[str, dict[str, int]] = Field(
        description="fact path -> fact value -> cases refused by this quota"
    )
    periods: list[PeriodAllocation]


class AllocationReport(BaseModel):
    """The outcome of running a population of decided cases through the quota definitions."""

    cases: int
    granted_by_rules: int
    granted: int = Field(description="granted by the rules and not refused by any quota")
    refused_by_quota: int
    quotas: list[QuotaAllocation]
