"""Hypothesis strategies for valid requests of every scheme, built from rules/facts.yaml.

Generic over the fact catalogue: a new fact or scheme needs no new strategy. Salaries and
dates lean towards the boundaries that decide cases (parameter values, change dates,
birthdays), because that is where rule bugs live.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st

from kmrules.decide import get_rulebook
from kmrules.facts import FactSpec
from kmrules.rulebook import Rulebook

FIRST_DAY = dt.date(2021, 1, 1)
LAST_DAY = dt.date(2026, 12, 31)
_COUNTRIES = ["NL", "IN", "TR", "US", "CN", "DE", "BR"]
_WORDS = ["ict", "technical", "care", "finance", "logistics"]


def change_dates(book: Rulebook) -> list[dt.date]:
    """Every date on which some parameter changes value (and the day before it)."""
    out: set[dt.date] = set()
    for spec in book.parameters.values():
        for value in spec.values:
            for day in (value.valid_from, value.until):
                if day is not None and FIRST_DAY <= day <= LAST_DAY:
                    out |= {day, day - dt.timedelta(days=1), day + dt.timedelta(days=1)}
    return sorted(d for d in out if FIRST_DAY <= d <= LAST_DAY)


def money_boundaries(book: Rulebook) -> list[float]:
    """Every EUR amount in the parameters, with a cent and a euro either side."""
    out: set[float] = set()
    for spec in book.parameters.values():
        if spec.unit and spec.unit.startswith("EUR"):
            for value in spec.values:
                v = float(value.value)  # type: ignore[arg-type]
                out |= {v, v - 0.01, v - 1, v + 1}
    return sorted(out)


def application_dates(book: Rulebook | None = None) -> st.SearchStrategy[dt.date]:
    """Application dates in the period the rules cover, often next to a change date."""
    book = book or get_rulebook()
    return st.one_of(st.dates(FIRST_DAY, LAST_DAY), st.sampled_from(change_dates(book)))


def salaries(book: Rulebook | None = None) -> st.SearchStrategy[float]:
    """Gross monthly salaries, often exactly at, or a cent or euro around, a criterion."""
    book = book or get_rulebook()
    return st.one_of(
        st.integers(0, 12_000).map(float),
        st.sampled_from(money_boundaries(book)),
        st.floats(0, 12_000, allow_nan=False, allow_infinity=False).map(lambda x: round(x, 2)),
    )


def _value(spec: FactSpec, book: Rulebook) -> st.SearchStrategy[Any]:
    if spec.path == "job.gross_monthly_salary":
        return salaries(book)
    if spec.path == "application_date":
        return application_dates(book)
    if spec.type == "date":
        return st.dates(dt.date(1950, 1, 1), dt.date(2027, 12, 31))
    if spec.type == "enum":
        return st.sampled_from(list(spec.values))
    if spec.type == "bool":
        return st.booleans()
    if spec.type == "integer":
        low = int(spec.minimum) if spec.minimum is not None else 0
        return st.integers(low, min(int(spec.maximum) if spec.maximum is not None else 120, 120))
    if spec.type == "number":
        floor = int(spec.minimum) if spec.minimum is not None else 0
        return st.integers(floor, 40).map(float)
    if spec.pattern == "^[A-Z]{2}$":
        return st.sampled_from(_COUNTRIES)
    return st.sampled_from(_WORDS)


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value.isoformat() if isinstance(value, dt.date) else value
    return tree


@st.composite
def cases(
    draw: st.DrawFn, book: Rulebook | None = None, complete: bool = False, birth_near_application: bool = True
) -> dict[str, Any]:
    """A valid case: every catalogued fact present (complete=True) or each one possibly absent."""
    book = book or get_rulebook()
    flat: dict[str, Any] = {}
    for path, spec in book.catalogue.facts.items():
        if spec.required or complete or draw(st.booleans()):
            flat[path] = draw(_value(spec, book))
    on = flat["application_date"]
    if birth_near_application and "applicant.birth_date" in flat and draw(st.booleans()):
        # someone turning 30 within a few days of the application date
        delta = draw(st.integers(-3, 3))
        try:
            flat["applicant.birth_date"] = on.replace(year=on.year - 30) + dt.timedelta(days=delta)
        except ValueError:  # 29 February
            flat["applicant.birth_date"] = dt.date(on.year - 30, 2, 28)
    return _nest(flat)


def requests(
    scheme: str, variant: Any = "baseline", book: Rulebook | None = None, complete: bool = False
) -> st.SearchStrategy[dict[str, Any]]:
    """Valid requests for one scheme under one variant (id, list, or inline package)."""
    return cases(book=book, complete=complete).map(lambda case: {"scheme": scheme, "variant": variant, "case": case})


def all_scheme_requests(book: Rulebook | None = None, complete: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Valid requests for any scheme of the rulebook (baseline)."""
    book = book or get_rulebook()
    return st.sampled_from(sorted(book.schemes)).flatmap(lambda s: requests(s, book=book, complete=complete))
