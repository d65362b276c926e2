"""The ledger without a database, for population simulations; same answers as `Ledger`.

`simulate_allocation` runs decided cases through quota definitions in application-date
order and reports when each quota filled and whom it refused, by segment.
"""

from __future__ import annotations

import heapq
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from kmrules.quota.definitions import QuotaDefinition, fact_value
from kmrules.quota.errors import InvalidCaseIdError, NothingHeldError
from kmrules.quota.models import (
    AllocationReport,
    PeriodAllocation,
    QuotaAllocation,
    Released,
    Reservation,
    Usage,
)
from kmrules.quota.outcome import HeldPlace, reservation_outcome, usage_from
from kmrules.quota.periods import constraining_periods, period_key

__all__ = ["InMemoryLedger", "SimulatedCase", "simulate_allocation"]

SimulatedCase = tuple[str, date, Mapping[str, object], bool]
"""(case_id, application_date, segment facts, granted by the rules)."""


@dataclass
class _PlaceNumbers:
    """Active place numbers of one period; hands out the lowest free number in O(log n)."""

    next_fresh: int = 1
    freed: list[int] = field(default_factory=list)

    def take(self) -> int:
        if self.freed:
            return heapq.heappop(self.freed)
        self.next_fresh += 1
        return self.next_fresh - 1

    def peek(self) -> int:
        return self.freed[0] if self.freed else self.next_fresh

    def give_back(self, number: int) -> None:
        heapq.heappush(self.freed, number)


class InMemoryLedger:
    """Reserve, peek, release and usage with the semantics of `Ledger`, held in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: dict[tuple[str, str], int] = defaultdict(int)
        self._numbers: dict[tuple[str, str], _PlaceNumbers] = defaultdict(_PlaceNumbers)
        self._held: dict[tuple[str, str], HeldPlace] = {}

    def reserve(self, defn: QuotaDefinition, application_date: date, case_id: str) -> Reservation:
        """Take a place (idempotent per case); see `Ledger.reserve`."""
        with self._lock:
            answer = self._answer(defn, application_date, case_id, take=True)
            if answer.granted and not answer.already_held and answer.place_no is not None:
                self._used[(defn.id, answer.period_key)] += 1
                self._held[(defn.id, case_id)] = (answer.period_key, answer.place_no)
            return answer

    def peek(self, defn: QuotaDefinition, application_date: date, case_id: str) -> Reservation:
        """What `reserve` would answer, changing nothing."""
        with self._lock:
            return self._answer(defn, application_date, case_id, take=False)

    def release(self, case_id: str, quota_id: str | None = None) -> list[Released]:
        """Give back the case's places (of one quota, or all); NothingHeldError if none held."""
        _check_case_id(case_id)
        now = datetime.now(UTC)
        with self._lock:
            mine = sorted(
                (q, held) for (q, c), held in self._held.items() if c == case_id and (quota_id is None or q == quota_id)
            )
            if not mine:
                raise NothingHeldError(case_id, quota_id)
            released: list[Released] = []
            for q, (key, number) in mine:
                del self._held[(q, case_id)]
                self._used[(q, key)] -= 1
                self._numbers[(q, key)].give_back(number)
                released.append(
                    Released(
                        quota_id=q,
                        period_key=key,
                        case_id=case_id,
                        place_no=number,
                        released_at=now,
                    )
                )
            return released

    def usage(self, defn: QuotaDefinition, period_key: str) -> Usage:
        """How full one period of a quota is."""
        with self._lock:
            return self._usage(defn, period_key)

    def usage_all(self, defns: Iterable[QuotaDefinition]) -> list[Usage]:
        """Usage of every period in which a definition holds places now (used > 0)."""
        with self._lock:
            wanted = {d.id: d for d in defns}
            keys = sorted(k for k, n in self._used.items() if k[0] in wanted and n > 0)
            return [self._usage(wanted[q], p) for q, p in keys]

    def _answer(self, defn: QuotaDefinition, application_date: date, case_id: str, *, take: bool) -> Reservation:
        _check_case_id(case_id)
        key = period_key(defn, application_date)
        numbers = self._numbers[(defn.id, key)]
        return reservation_outcome(
            defn,
            key,
            case_id,
            self._used_by_period(defn, key),
            self._held.get((defn.id, case_id)),
            numbers.take if take else numbers.peek,
        )

    def _used_by_period(self, defn: QuotaDefinition, key: str) -> dict[str, int]:
        return {p: self._used.get((defn.id, p), 0) for p in constraining_periods(defn, key)}

    def _usage(self, defn: QuotaDefinition, key: str) -> Usage:
        return usage_from(defn, key, self._used_by_period(defn, key))


@dataclass
class _Tally:
    """Running totals of one quota during a simulation."""

    taken: int = 0
    refused: int = 0
    filled_on: date | None = None
    taken_by: dict[str, dict[str, int]] = field(default_factory=dict)
    refused_by: dict[str, dict[str, int]] = field(default_factory=dict)
    period_refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    period_filled: dict[str, date] = field(default_factory=dict)

    def count(self, into: dict[str, dict[str, int]], facts: Mapping[str, object]) -> None:
        for path in facts:
            value = fact_value(facts, path)
            bucket = into.setdefault(path, {})
            label = "" if value is None else str(value)
            bucket[label] = bucket.get(label, 0) + 1


def simulate_allocation(cases: Iterable[SimulatedCase], defns: Iterable[QuotaDefinition]) -> AllocationReport:
    """Allocate places to the cases the rules granted, in application-date order.

    A case counts under each definition that governs its date and whose segment it matches.
    If any hard quota refuses it, the case is refused and takes no place anywhere.
    """
    definitions = list(defns)
    ledger = InMemoryLedger()
    tallies = {d.id: _Tally() for d in definitions}
    ordered = sorted(cases, key=lambda c: c[1])
    granted_by_rules = granted = refused = 0
    for case_id, on, facts, rules_granted in ordered:
        if not rules_granted:
            continue
        granted_by_rules += 1
        applicable = [d for d in definitions if d.governs(on) and d.matches(facts)]
        dry = [(d, ledger.peek(d, on, case_id)) for d in applicable]
        blocked = [(d, r) for d, r in dry if not r.granted]
        if blocked:
            refused += 1
            for d, r in blocked:
                tally = tallies[d.id]
                tally.refused += 1
                tally.count(tally.refused_by, facts)
                tally.period_refused[r.period_key] += 1
                tally.period_filled.setdefault(r.period_key, on)
                if tally.filled_on is None:
                    tally.filled_on = on
            continue
        granted += 1
        for d in applicable:
            answer = ledger.reserve(d, on, case_id)
            tally = tallies[d.id]
            if not answer.already_held:
                tally.taken += 1
                tally.count(tally.taken_by, facts)
            if d.kind == "target" and answer.exceeded and tally.filled_on is None:
                tally.filled_on = on
    return AllocationReport(
        cases=len(ordered),
        granted_by_rules=granted_by_rules,
        granted=granted,
        refused_by_quota=refused,
        quotas=[_allocation(d, tallies[d.id], ledger) for d in definitions],
    )


def _allocation(defn: QuotaDefinition, tally: _Tally, ledger: InMemoryLedger) -> QuotaAllocation:
    used = {u.period_key for u in ledger.usage_all([defn])}
    periods: list[PeriodAllocation] = []
    for k in sorted(used | set(tally.period_refused)):
        usage = ledger.usage(defn, k)
        periods.append(
            PeriodAllocation(
                period_key=k,
                limit=usage.limit,
                taken=usage.used,
                refused=tally.period_refused.get(k, 0),
                filled_on=tally.period_filled.get(k),
            )
        )
    exceeded_by = sum(max(0, p.taken - p.limit) for p in periods) if defn.kind == "target" else 0
    return QuotaAllocation(
        quota_id=defn.id,
        kind=defn.kind,
        limit=defn.limit,
        filled_on=tally.filled_on,
        taken=tally.taken,
        refused=tally.refused,
        exceeded_by=exceeded_by,
        taken_by_segment=tally.taken_by,
        refused_by_segment=tally.refused_by,
        periods=periods,
    )


def _check_case_id(case_id: str) -> None:
    if not 1 <= len(case_id) <= 200:
        raise InvalidCaseIdError(case_id)
