"""Period keys and per-period limits, including quarterly tranches with rollover.

Pure date arithmetic shared by the database ledger and the in-memory ledger, so both
answer identically.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING

from kmrules.quota.errors import InvalidPeriodKeyError, NotGovernedError

if TYPE_CHECKING:
    from kmrules.quota.definitions import QuotaDefinition

_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")


def period_key(defn: QuotaDefinition, application_date: date) -> str:
    """The period an application falls in: "2024" (yearly) or "2024-Q2" (quarterly)."""
    if not defn.governs(application_date):
        raise NotGovernedError(defn.id, application_date)
    if defn.period == "year":
        return f"{application_date.year:04d}"
    return f"{application_date.year:04d}-Q{(application_date.month - 1) // 3 + 1}"


def parse_period_key(defn: QuotaDefinition, key: str) -> tuple[int, int | None]:
    """(year, quarter) of a key; quarter is None for yearly definitions."""
    if defn.period == "year":
        m = _YEAR.match(key)
        if m is None:
            raise InvalidPeriodKeyError(defn.id, key, "yearly")
        return int(m.group(1)), None
    m = _QUARTER.match(key)
    if m is None:
        raise InvalidPeriodKeyError(defn.id, key, "quarterly")
    return int(m.group(1)), int(m.group(2))


def quarter_limits(limit: int) -> tuple[int, int, int, int]:
    """Split a yearly limit into four tranches that add up to it (earlier quarters get the rest)."""
    base, rest = divmod(limit, 4)
    q1, q2, q3, q4 = (base + (1 if q < rest else 0) for q in range(4))
    return q1, q2, q3, q4


def period_limit(defn: QuotaDefinition, period_key: str, used_by_earlier_periods: int) -> int:
    """Places of one period; with rollover, unused places of the year's earlier quarters join it.

    `used_by_earlier_periods` is the number of places held in earlier quarters of the same year;
    it is ignored without rollover.
    """
    year, quarter = parse_period_key(defn, period_key)
    del year
    if quarter is None:
        return defn.limit
    tranches = quarter_limits(defn.limit)
    if not defn.rollover:
        return tranches[quarter - 1]
    return max(0, sum(tranches[:quarter]) - used_by_earlier_periods)


def constraining_periods(defn: QuotaDefinition, key: str) -> list[str]:
    """The periods whose usage bounds `key`: all quarters of the year with rollover, else itself.

    The ledger locks exactly these counters, in this (sorted) order.
    """
    year, quarter = parse_period_key(defn, key)
    if quarter is None or not defn.rollover:
        return [key]
    return [f"{year:04d}-Q{q}" for q in range(1, 5)]


def effective_limit(defn: QuotaDefinition, key: str, used_by_period: Mapping[str, int]) -> int:
    """The limit a reservation in `key` is held to, given the usage of every period of the year.

    Without rollover this is `period_limit`. With rollover the cumulative usage of quarters
    1..k may never exceed the cumulative tranches 1..k, for every k from this quarter on: this
    equals `period_limit` when later quarters are still empty, and stays safe when an
    application dated in an earlier quarter is decided after later quarters took places.
    """
    year, quarter = parse_period_key(defn, key)
    if quarter is None or not defn.rollover:
        return period_limit(defn, key, 0)
    tranches = quarter_limits(defn.limit)
    used = [used_by_period.get(f"{year:04d}-Q{q}", 0) for q in range(1, 5)]
    bounds = [sum(tranches[:k]) - (sum(used[:k]) - used[quarter - 1]) for k in range(quarter, 5)]
    return max(0, min(bounds))
