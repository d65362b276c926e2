"""Derived facts: the short list of named, pure date/number functions that rule files call.

Rule files name a function and its arguments (`fn: age_on`); the loader checks the
name and the argument types against this registry, so a typo fails at load time.
Every function here is total on valid input; an unknown argument makes the derived
fact unknown (the caller handles that), never a guess.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def age_on(birth_date: dt.date, on: dt.date) -> int:
    """Age in whole years on a date; a 29 February birthday counts on 28 February in common years
    (the day before 1 March, as Dutch civil law reckons it: the age is reached at the start of the
    anniversary day)."""
    years = on.year - birth_date.year
    anniversary = add_years(birth_date, years)
    return years if on >= anniversary else years - 1


def add_years(start: dt.date, years: int) -> dt.date:
    """The same calendar day `years` later; 29 February maps to 28 February in common years."""
    target = start.year + years
    if start.month == 2 and start.day == 29 and not calendar.isleap(target):
        return dt.date(target, 2, 28)
    return start.replace(year=target)


def add_months(start: dt.date, months: int) -> dt.date:
    """The same day of the month `months` later, clamped to the last day of a shorter month."""
    index = start.year * 12 + (start.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(start.day, last))


def add_days(start: dt.date, days: int) -> dt.date:
    """A date `days` later (negative: earlier)."""
    return start + dt.timedelta(days=days)


def days_between(start: dt.date, end: dt.date) -> int:
    """Whole days from start to end (negative when end is before start)."""
    return (end - start).days


def whole_months_between(start: dt.date, end: dt.date) -> int:
    """Completed calendar months from start to end (0 when end is before start)."""
    if end < start:
        return 0
    months = (end.year - start.year) * 12 + (end.month - start.month)
    return months if add_months(start, months) <= end else months - 1


def whole_years_between(start: dt.date, end: dt.date) -> int:
    """Completed years from start to end (0 when end is before start)."""
    return max(0, age_on(start, end))


def earliest(first: dt.date, second: dt.date) -> dt.date:
    """The earlier of two dates (a period capped by another date)."""
    return min(first, second)


def latest(first: dt.date, second: dt.date) -> dt.date:
    """The later of two dates."""
    return max(first, second)


def capped_at(start: dt.date, cap: dt.date | None) -> dt.date:
    """A date never later than a cap; an unknown cap leaves the date as it is (the caller
    reports the cap as missing next to the value)."""
    return start if cap is None else min(start, cap)


@dataclass(frozen=True)
class DerivedFunction:
    """A registered function with the fact types of its arguments and result."""

    name: str
    function: Callable[..., Any]
    arg_types: tuple[str, ...]  # a trailing "?" marks an argument that may be unknown
    result_type: str
    description: str


REGISTRY: dict[str, DerivedFunction] = {
    f.name: f
    for f in (
        DerivedFunction("age_on", age_on, ("date", "date"), "integer", "age in whole years on a date"),
        DerivedFunction("add_years", add_years, ("date", "integer"), "date", "date plus whole years"),
        DerivedFunction("add_months", add_months, ("date", "integer"), "date", "date plus months"),
        DerivedFunction("add_days", add_days, ("date", "integer"), "date", "date plus days"),
        DerivedFunction("days_between", days_between, ("date", "date"), "integer", "days"),
        DerivedFunction("whole_months_between", whole_months_between, ("date", "date"), "integer", "months"),
        DerivedFunction("whole_years_between", whole_years_between, ("date", "date"), "integer", "years"),
        DerivedFunction("earliest", earliest, ("date", "date"), "date", "earlier date"),
        DerivedFunction("latest", latest, ("date", "date"), "date", "later date"),
        DerivedFunction("capped_at", capped_at, ("date", "date?"), "date", "date, at most the cap"),
    )
}
