"""Ledger.reserve_all (several quotas, all or nothing) and Ledger.release(on_result=...), on real
SQLite and PostgreSQL: what the decision service builds on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from concurrency_helpers import all_at_once
from service_helpers import build_defn, count, fresh_database, unique
from sqlalchemy import Connection, Engine

from kmrules.quota.errors import DuplicateQuotaError
from kmrules.quota.ledger import Ledger
from kmrules.quota.models import Released, Reservation
from kmrules.store.audit import append_audit
from kmrules.store.database import make_engine, migrate

ON = date(2024, 5, 1)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with fresh_database(str(request.param), tmp_path_factory.mktemp("reserve_all")) as url:
        eng = make_engine(url, pool_size=20, max_overflow=20)
        migrate(eng)
        yield eng
        eng.dispose()


def audit_count(engine: Engine, case_id: str) -> int:
    return count(engine, case_id=case_id, audit=True)


def test_a_full_quota_leaves_no_place_in_the_others(engine: Engine) -> None:
    roomy, tight = build_defn(limit=5), build_defn(limit=1)
    target = build_defn(kind="target", limit=1)
    ledger = Ledger(engine)
    first, second = unique("c"), unique("c")
    answers = ledger.reserve_all([roomy, tight, target], ON, first)
    assert [(a.granted, a.already_held, a.place_no, a.used) for a in answers] == [
        (True, False, 1, 1),
        (True, False, 1, 1),
        (True, False, 1, 1),
    ]
    blocked = ledger.reserve_all([roomy, tight, target], ON, second)
    # the others answer as `peek` would: room for place 2, nothing taken
    assert [(a.quota_id, a.granted, a.place_no, a.used) for a in blocked] == [
        (roomy.id, True, 2, 2),
        (tight.id, False, None, 1),
        (target.id, True, 2, 2),
    ]
    assert count(engine, case_id=second) == 0
    assert [ledger.usage(d, "2024").used for d in (roomy, tight, target)] == [1, 1, 1]
    again = ledger.reserve_all([roomy, tight, target], ON, first)  # idempotent
    assert [a.already_held for a in again] == [True, True, True]
    assert ledger.verify([roomy.id, tight.id, target.id]) == []


def test_dry_run_and_no_definitions_still_run_the_callback(engine: Engine) -> None:
    defn = build_defn(limit=1)
    ledger = Ledger(engine)
    case = unique("c")
    seen: list[list[Reservation]] = []

    def audit(conn: Connection, answers: list[Reservation]) -> None:
        seen.append(answers)
        append_audit(conn, kind="decision", request_json="{}", response_json="{}", actor_role="t", case_id=case)

    (dry,) = ledger.reserve_all([defn], ON, case, dry_run=True, on_result=audit)
    assert (dry.granted, dry.place_no, dry.used) == (True, 1, 1)
    assert ledger.reserve_all([], ON, case, on_result=audit) == []
    assert [len(s) for s in seen] == [1, 0]
    assert (count(engine, case_id=case), audit_count(engine, case)) == (0, 2)


def test_a_failing_callback_writes_nothing(engine: Engine) -> None:
    a, b = build_defn(limit=3), build_defn(limit=3)
    ledger = Ledger(engine)
    case = unique("c")

    def audit_then_fail(conn: Connection, answers: list[Reservation]) -> None:
        append_audit(conn, kind="decision", request_json="{}", response_json="{}", actor_role="t", case_id=case)
        raise RuntimeError("crash after the audit row")

    with pytest.raises(RuntimeError, match="crash"):
        ledger.reserve_all([a, b], ON, case, on_result=audit_then_fail)
    assert (count(engine, case_id=case), audit_count(engine, case)) == (0, 0)
    assert ledger.verify([a.id, b.id]) == []


def test_one_quota_named_twice_is_refused(engine: Engine) -> None:
    defn = build_defn()
    with pytest.raises(DuplicateQuotaError):
        Ledger(engine).reserve_all([defn, defn], ON, unique("c"))


def test_release_reports_what_it_gave_back_inside_the_transaction(engine: Engine) -> None:
    a, b = build_defn(limit=3), build_defn(limit=3)
    ledger = Ledger(engine)
    case = unique("c")
    ledger.reserve_all([a, b], ON, case)
    seen: list[list[Released]] = []

    def audit(conn: Connection, released: list[Released]) -> None:
        seen.append(released)
        append_audit(conn, kind="release", request_json="{}", response_json="[]", actor_role="t", case_id=case)

    released = ledger.release(case, on_result=audit)
    assert seen == [released]
    assert sorted(r.quota_id for r in released) == sorted([a.id, b.id])
    assert (count(engine, case_id=case), audit_count(engine, case)) == (0, 1)


@pytest.mark.parametrize("repetition", range(2))
def test_concurrent_cases_needing_two_quotas_never_leak_a_place(engine: Engine, repetition: int) -> None:
    """120 cases, each needing a place in both quotas (limits 30 and 20), half of them naming the
    quotas in the other order: exactly 20 cases get both, and no case holds only one."""
    wide, narrow = build_defn(limit=30), build_defn(limit=20)
    ledger = Ledger(engine)
    n = 120

    def run(i: int) -> tuple[str, list[Reservation]]:
        case = f"r{repetition}-{i}"
        order = [wide, narrow] if i % 2 else [narrow, wide]
        return case, ledger.reserve_all(order, ON, case)

    answers = dict(all_at_once(run, n))
    winners = [c for c, result in answers.items() if all(a.granted for a in result)]
    assert len(winners) == 20
    assert ledger.usage(wide, "2024").used == 20
    assert ledger.usage(narrow, "2024").used == 20
    assert count(engine, quota_id=wide.id) == count(engine, quota_id=narrow.id) == 20
    assert all(count(engine, case_id=c) == (2 if c in winners else 0) for c in answers)
    assert ledger.verify([wide.id, narrow.id]) == []
