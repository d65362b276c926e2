"""Definitions and period arithmetic: keys, quarterly tranches, rollover."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from quota_helpers import build_defn

from kmrules.errors import KmrulesError
from kmrules.quota.definitions import QuotaDefinition, period_key, period_limit
from kmrules.quota.errors import InvalidPeriodKeyError, NotGovernedError
from kmrules.quota.periods import effective_limit, quarter_limits


def test_period_keys() -> None:
    yearly = build_defn(period="year")
    quarterly = build_defn(period="quarter")
    assert period_key(yearly, date(2024, 12, 31)) == "2024"
    assert [period_key(quarterly, date(2024, m, 1)) for m in (1, 3, 4, 6, 7, 10, 12)] == [
        "2024-Q1",
        "2024-Q1",
        "2024-Q2",
        "2024-Q2",
        "2024-Q3",
        "2024-Q4",
        "2024-Q4",
    ]


def test_dates_outside_validity_are_not_governed() -> None:
    defn = build_defn(valid_from=date(2024, 1, 1), valid_until=date(2024, 12, 31))
    assert defn.governs(date(2024, 6, 1))
    assert not defn.governs(date(2023, 12, 31))
    with pytest.raises(NotGovernedError) as caught:
        period_key(defn, date(2025, 1, 1))
    assert isinstance(caught.value, KmrulesError)


@given(st.integers(min_value=1, max_value=100_000))
def test_quarter_tranches_add_up_to_the_limit(limit: int) -> None:
    tranches = quarter_limits(limit)
    assert sum(tranches) == limit
    assert max(tranches) - min(tranches) <= 1
    assert list(tranches) == sorted(tranches, reverse=True)


def test_quarter_limits_without_rollover() -> None:
    defn = build_defn(period="quarter", limit=50)
    assert [period_limit(defn, f"2024-Q{q}", 999) for q in range(1, 5)] == [13, 13, 12, 12]


def test_rollover_adds_unused_places_of_earlier_quarters() -> None:
    defn = build_defn(period="quarter", limit=50, rollover=True)
    assert period_limit(defn, "2024-Q1", 0) == 13
    assert period_limit(defn, "2024-Q2", 3) == 23  # 10 unused places of Q1 roll over
    assert period_limit(defn, "2024-Q4", 20) == 30
    assert period_limit(defn, "2024-Q2", 40) == 0  # never negative
    used = {"2024-Q1": 3}
    assert effective_limit(defn, "2024-Q2", used) == 23


def test_rollover_bounds_late_applications_of_earlier_quarters() -> None:
    """A Q1 application decided after Q2 used the rolled-over places gets none of them back."""
    defn = build_defn(period="quarter", limit=8, rollover=True)  # tranches 2, 2, 2, 2
    assert effective_limit(defn, "2024-Q1", {"2024-Q2": 4}) == 0
    assert effective_limit(defn, "2024-Q1", {"2024-Q2": 3}) == 1
    assert effective_limit(defn, "2024-Q1", {}) == 2


def test_period_key_must_fit_the_period() -> None:
    with pytest.raises(InvalidPeriodKeyError):
        period_limit(build_defn(period="year"), "2024-Q1", 0)
    with pytest.raises(InvalidPeriodKeyError):
        period_limit(build_defn(period="quarter"), "2024", 0)


@pytest.mark.parametrize(
    "bad",
    [
        {"limit": 0},
        {"kind": "maximum"},
        {"period": "month"},
        {"rollover": True, "period": "year"},
        {"valid_from": date(2025, 1, 1), "valid_until": date(2024, 1, 1)},
        {"unexpected": 1},
        {"id": "has spaces"},
    ],
)
def test_invalid_definitions_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        build_defn(**bad)


def test_definition_is_frozen() -> None:
    defn = build_defn()
    with pytest.raises(ValidationError):
        defn.limit = 3  # type: ignore[misc]


def test_segment_matching_flat_and_nested_facts() -> None:
    defn = build_defn(segment={"job.sector": "ict", "employer.recognised_sponsor": "true"})
    assert defn.matches({"job.sector": "ict", "employer.recognised_sponsor": True})
    assert defn.matches({"job": {"sector": "ict"}, "employer": {"recognised_sponsor": True}})
    assert not defn.matches({"job.sector": "care", "employer.recognised_sponsor": True})
    assert not defn.matches({"job.sector": "ict"})
    assert build_defn().matches({})


def test_definition_round_trips_through_json() -> None:
    defn = build_defn(period="quarter", rollover=True, segment={"job.sector": "ict"})
    assert QuotaDefinition.model_validate_json(defn.model_dump_json()) == defn
