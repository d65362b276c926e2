"""Derived-fact functions, checked against calendar facts worked out by hand."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kmrules.derive import (
    REGISTRY,
    add_months,
    add_years,
    age_on,
    capped_at,
    days_between,
    whole_months_between,
    whole_years_between,
)

D = dt.date


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        (D(1993, 3, 15), D(2023, 3, 15), 30),  # birthday on the day: already 30
        (D(1993, 3, 16), D(2023, 3, 15), 29),  # the day before the 30th birthday
        (D(1992, 12, 31), D(2022, 12, 31), 30),
        (D(1993, 1, 1), D(2022, 12, 31), 29),
        (D(1992, 2, 29), D(2022, 3, 1), 30),
        (D(1992, 2, 29), D(2022, 2, 27), 29),
        (D(1992, 2, 29), D(2024, 2, 29), 32),
    ],
)
def test_age_on(birth: dt.date, on: dt.date, age: int) -> None:
    assert age_on(birth, on) == age


@pytest.mark.parametrize(
    ("start", "months", "end"),
    [
        (D(2023, 3, 31), 3, D(2023, 6, 30)),
        (D(2023, 1, 15), 3, D(2023, 4, 15)),
        (D(2023, 11, 30), 3, D(2024, 2, 29)),
        (D(2022, 11, 30), 3, D(2023, 2, 28)),
        (D(2023, 10, 31), 6, D(2024, 4, 30)),
        (D(2023, 12, 15), 3, D(2024, 3, 15)),
    ],
)
def test_add_months(start: dt.date, months: int, end: dt.date) -> None:
    assert add_months(start, months) == end


def test_add_years_leap_day() -> None:
    assert add_years(D(2020, 2, 29), 3) == D(2023, 2, 28)
    assert add_years(D(2020, 2, 29), 4) == D(2024, 2, 29)
    assert add_years(D(2021, 7, 1), 3) == D(2024, 7, 1)


def test_whole_periods() -> None:
    assert whole_months_between(D(2023, 1, 31), D(2023, 2, 27)) == 0
    assert whole_months_between(D(2023, 1, 31), D(2023, 2, 28)) == 1  # same convention as add_months
    assert whole_months_between(D(2023, 1, 15), D(2023, 4, 15)) == 3
    assert whole_months_between(D(2023, 1, 15), D(2023, 4, 14)) == 2
    assert whole_months_between(D(2023, 5, 1), D(2023, 1, 1)) == 0
    assert whole_years_between(D(2020, 7, 1), D(2023, 7, 1)) == 3
    assert whole_years_between(D(2020, 7, 1), D(2023, 6, 30)) == 2
    assert days_between(D(2024, 6, 11), D(2024, 6, 12)) == 1


def test_capped_at() -> None:
    assert capped_at(D(2023, 6, 30), D(2023, 5, 1)) == D(2023, 5, 1)
    assert capped_at(D(2023, 6, 30), D(2023, 7, 1)) == D(2023, 6, 30)
    assert capped_at(D(2023, 6, 30), None) == D(2023, 6, 30)


@given(st.dates(D(1950, 1, 1), D(2010, 12, 31)), st.dates(D(2021, 1, 1), D(2027, 12, 31)))
def test_age_increases_by_one_on_each_birthday(birth: dt.date, on: dt.date) -> None:
    age = age_on(birth, on)
    assert add_years(birth, age) <= on < add_years(birth, age + 1)


def test_registry_types_are_declared() -> None:
    for fn in REGISTRY.values():
        assert fn.result_type in {"date", "integer", "number"}
        assert all(t.rstrip("?") in {"date", "integer", "number"} for t in fn.arg_types)
