"""The in-memory ledger agrees with the database ledger; population allocation reports."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quota_helpers import build_defn
from sqlalchemy import Engine

from kmrules.quota.definitions import QuotaDefinition
from kmrules.quota.errors import QuotaError
from kmrules.quota.ledger import Ledger
from kmrules.quota.memory import InMemoryLedger, SimulatedCase, simulate_allocation

TEMPLATES = [
    build_defn(id="yearly_quota", limit=3),
    build_defn(id="rollover_quota", limit=6, period="quarter", rollover=True),
    build_defn(id="quarterly_target", kind="target", limit=4, period="quarter"),
    build_defn(
        id="bounded_quota",
        limit=5,
        period="quarter",
        rollover=True,
        valid_from=date(2024, 3, 1),
        valid_until=date(2025, 6, 30),
    ),
]
DATES = [date(2024, m, d) for m, d in ((1, 10), (3, 31), (4, 1), (6, 15), (9, 1), (12, 31))] + [
    date(2025, 2, 1),
    date(2025, 7, 1),
]


@dataclass(frozen=True)
class Reserve:
    defn: int
    case: int
    on: date


@dataclass(frozen=True)
class Release:
    case: int
    defn: int | None


Op = Reserve | Release

ops = st.one_of(
    st.builds(
        Reserve,
        st.integers(0, len(TEMPLATES) - 1),
        st.integers(0, 9),
        st.sampled_from(DATES),
    ),
    st.builds(Release, st.integers(0, 9), st.none() | st.integers(0, len(TEMPLATES) - 1)),
)


def _apply(
    ledger: Ledger | InMemoryLedger, defns: list[QuotaDefinition], op: Op, tag: str
) -> object:
    """Run one operation; an error is an answer too (its type)."""
    try:
        if isinstance(op, Reserve):
            return ledger.reserve(defns[op.defn], op.on, f"{tag}-{op.case}")
        quota_id = None if op.defn is None else defns[op.defn].id
        return [
            (r.quota_id, r.period_key, r.case_id, r.place_no)
            for r in ledger.release(f"{tag}-{op.case}", quota_id)
        ]
    except QuotaError as exc:
        return type(exc).__name__


def _check_agreement(engine: Engine, sequence: list[Op]) -> None:
    tag = uuid.uuid4().hex[:10]
    defns = [t.model_copy(update={"id": f"{t.id}-{tag}"}) for t in TEMPLATES]
    db, memory = Ledger(engine), InMemoryLedger()
    for op in sequence:
        assert _apply(db, defns, op, tag) == _apply(memory, defns, op, tag), op
    assert db.usage_all(defns) == memory.usage_all(defns)
    for defn in defns:
        for on in DATES:
            if defn.governs(on):
                assert db.peek(defn, on, f"{tag}-new") == memory.peek(defn, on, f"{tag}-new")
    assert db.verify(d.id for d in defns) == []


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(ops, max_size=30))
def test_memory_agrees_with_sqlite(sqlite_engine: Engine, sequence: list[Op]) -> None:
    _check_agreement(sqlite_engine, sequence)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(ops, max_size=30))
def test_memory_agrees_with_postgres(pg_engine: Engine, sequence: list[Op]) -> None:
    _check_agreement(pg_engine, sequence)


def test_memory_ledger_basics() -> None:
    ledger = InMemoryLedger()
    quota = build_defn(limit=2)
    target = build_defn(kind="target", limit=1)
    on = date(2024, 5, 1)
    assert [ledger.reserve(quota, on, c).granted for c in "aab"] == [True, True, True]
    assert ledger.reserve(quota, on, "a").already_held
    assert not ledger.reserve(quota, on, "c").granted
    assert [ledger.reserve(target, on, c).exceeded for c in "ab"] == [False, True]
    assert [r.quota_id for r in ledger.release("a")] == sorted([quota.id, target.id])
    assert ledger.reserve(quota, on, "c").place_no == 1


def test_simulation_fills_the_quota_and_breaks_refusals_down_by_sector() -> None:
    quota = build_defn(id="km_quota_2024", limit=3)
    ict_target = build_defn(
        id="ict_target_2024", kind="target", limit=1, segment={"job.sector": "ict"}
    )
    cases = [  # deliberately not in date order
        ("c5", date(2024, 5, 1), {"job.sector": "ict"}, True),
        ("c1", date(2024, 1, 1), {"job.sector": "ict"}, True),
        ("c2", date(2024, 2, 1), {"job.sector": "finance"}, True),
        ("cx", date(2024, 2, 15), {"job.sector": "ict"}, False),  # refused by the rules
        ("c3", date(2024, 3, 1), {"job.sector": "ict"}, True),
        ("c4", date(2024, 4, 1), {"job.sector": "care"}, True),
    ]
    report = simulate_allocation(cases, [quota, ict_target])
    assert (report.cases, report.granted_by_rules, report.granted, report.refused_by_quota) == (
        6,
        5,
        3,
        2,
    )
    by_id = {q.quota_id: q for q in report.quotas}
    km = by_id["km_quota_2024"]
    assert (km.taken, km.refused, km.filled_on) == (3, 2, date(2024, 4, 1))
    assert km.taken_by_segment == {"job.sector": {"ict": 2, "finance": 1}}
    assert km.refused_by_segment == {"job.sector": {"care": 1, "ict": 1}}
    assert [(p.period_key, p.limit, p.taken, p.refused) for p in km.periods] == [("2024", 3, 3, 2)]
    ict = by_id["ict_target_2024"]
    # c5 (ict) was refused by the hard quota, so takes no target place either
    assert (ict.taken, ict.refused, ict.filled_on, ict.exceeded_by) == (2, 0, date(2024, 3, 1), 1)


def test_simulation_with_quarterly_rollover() -> None:
    defn = build_defn(id="pilot", limit=4, period="quarter", rollover=True)
    cases: list[SimulatedCase] = [
        (f"c{i}", date(2024, 4 + (i % 2), 1 + i), {}, True) for i in range(5)
    ]
    report = simulate_allocation(cases, [defn])
    (alloc,) = report.quotas
    assert (alloc.taken, alloc.refused, alloc.filled_on) == (2, 3, date(2024, 4, 5))
    assert [(p.period_key, p.limit, p.taken) for p in alloc.periods] == [("2024-Q2", 2, 2)]


@pytest.mark.parametrize("n", [20_000])
def test_simulation_of_a_large_population_is_fast(n: int) -> None:
    defn = build_defn(id="km", limit=n // 2, period="quarter", rollover=True)
    target = build_defn(id="ict", kind="target", limit=n // 10, segment={"job.sector": "ict"})
    sectors = ["ict", "finance", "engineering", "research"]
    cases = [
        (f"c{i}", date(2024, 1 + i % 12, 1 + i % 28), {"job.sector": sectors[i % 4]}, i % 7 != 0)
        for i in range(n)
    ]
    report = simulate_allocation(cases, [defn, target])
    km = report.quotas[0]
    assert km.taken == n // 2
    assert km.filled_on is not None
    assert sum(km.refused_by_segment["job.sector"].values()) == km.refused
