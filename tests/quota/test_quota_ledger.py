"""Ledger semantics on both backends: idempotency, quota vs target, release, rollover, callbacks."""

from __future__ import annotations

from datetime import date

import pytest
from quota_helpers import build_defn, unique
from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.engine import make_url

from kmrules.quota.errors import (
    HeldInOtherPeriodError,
    InvalidCaseIdError,
    LedgerBusyError,
    NotGovernedError,
    NothingHeldError,
)
from kmrules.quota.ledger import Ledger, Reservation
from kmrules.store.audit import append_audit, list_audit
from kmrules.store.database import make_engine
from kmrules.store.tables import audit_log, quota_counters, quota_places

ON = date(2024, 5, 1)


def places_of(engine: Engine, quota_id: str) -> int:
    with engine.connect() as conn:
        stmt = select(func.count()).where(quota_places.c.quota_id == quota_id)
        return int(conn.execute(stmt).scalar_one())


def test_same_case_ten_times_takes_one_place(engine: Engine) -> None:
    defn = build_defn(limit=5)
    ledger = Ledger(engine)
    case = unique("case")
    answers = [ledger.reserve(defn, ON, case) for _ in range(10)]
    assert answers[0].already_held is False
    assert all(a.already_held for a in answers[1:])
    assert {a.place_no for a in answers} == {1}
    assert ledger.usage(defn, "2024").used == 1
    assert places_of(engine, defn.id) == 1


def test_quota_refuses_when_full(engine: Engine) -> None:
    defn = build_defn(limit=2)
    ledger = Ledger(engine)
    a, b, c = (ledger.reserve(defn, ON, unique("c")) for _ in range(3))
    assert (a.granted, b.granted, c.granted) == (True, True, False)
    assert (c.place_no, c.used, c.limit, c.exceeded) == (None, 2, 2, False)
    assert ledger.usage(defn, "2024").remaining == 0


def test_target_grants_past_the_limit_and_flags_it(engine: Engine) -> None:
    defn = build_defn(kind="target", limit=2)
    ledger = Ledger(engine)
    answers = [ledger.reserve(defn, ON, unique("c")) for _ in range(4)]
    assert all(a.granted for a in answers)
    assert [a.exceeded for a in answers] == [False, False, True, True]
    assert [a.place_no for a in answers] == [1, 2, 3, 4]
    usage = ledger.usage(defn, "2024")
    assert (usage.used, usage.limit, usage.remaining, usage.kind) == (4, 2, 0, "target")


def test_release_frees_a_place_for_a_later_case(engine: Engine) -> None:
    defn = build_defn(limit=2)
    ledger = Ledger(engine)
    first, second = unique("c"), unique("c")
    ledger.reserve(defn, ON, first)
    ledger.reserve(defn, ON, second)
    assert not ledger.reserve(defn, ON, unique("c")).granted

    released = ledger.release(first)
    assert [(r.quota_id, r.period_key, r.place_no) for r in released] == [(defn.id, "2024", 1)]
    with pytest.raises(NothingHeldError):
        ledger.release(first)  # a second release changes nothing
    assert ledger.usage(defn, "2024").used == 1

    late = ledger.reserve(defn, ON, unique("c"))
    assert (late.granted, late.place_no, late.used) == (True, 1, 2)
    back = ledger.reserve(defn, ON, first)  # the released case may apply again
    assert not back.granted
    assert ledger.verify([defn.id]) == []


def test_release_of_one_quota_keeps_the_others(engine: Engine) -> None:
    quota, target = build_defn(limit=3), build_defn(kind="target", limit=3)
    ledger = Ledger(engine)
    case = unique("c")
    ledger.reserve(quota, ON, case)
    ledger.reserve(target, ON, case)
    assert [r.quota_id for r in ledger.release(case, target.id)] == [target.id]
    assert ledger.reserve(quota, ON, case).already_held
    assert [r.quota_id for r in ledger.release(case)] == [quota.id]
    with pytest.raises(NothingHeldError):
        ledger.release(case, quota.id)


def test_lowest_free_place_number_is_reused(engine: Engine) -> None:
    defn = build_defn(limit=5)
    ledger = Ledger(engine)
    cases = [unique("c") for _ in range(4)]
    for case in cases:
        ledger.reserve(defn, ON, case)
    ledger.release(cases[1])
    ledger.release(cases[2])
    assert [ledger.reserve(defn, ON, unique("n")).place_no for _ in range(3)] == [2, 3, 5]


def test_rollover_quarters(engine: Engine) -> None:
    defn = build_defn(limit=8, period="quarter", rollover=True)  # 2 per quarter
    ledger = Ledger(engine)
    q1 = ledger.reserve(defn, date(2024, 2, 1), unique("c"))
    assert (q1.period_key, q1.limit) == ("2024-Q1", 2)
    q2 = [ledger.reserve(defn, date(2024, 5, 1), unique("c")) for _ in range(4)]
    assert [a.granted for a in q2] == [True, True, True, False]  # 2 + 1 rolled over
    assert q2[0].limit == 3
    assert ledger.usage(defn, "2024-Q3").limit == 2
    # a late Q1 application finds its quarter's unused place taken by rollover
    assert not ledger.reserve(defn, date(2024, 3, 31), unique("c")).granted
    # next year starts afresh
    assert ledger.reserve(defn, date(2025, 1, 5), unique("c")).limit == 2


def test_quarters_without_rollover_are_independent(engine: Engine) -> None:
    defn = build_defn(limit=4, period="quarter")
    ledger = Ledger(engine)
    assert ledger.reserve(defn, date(2024, 1, 5), unique("c")).granted
    assert not ledger.reserve(defn, date(2024, 1, 6), unique("c")).granted
    assert ledger.reserve(defn, date(2024, 4, 5), unique("c")).limit == 1


def test_case_holding_another_period_must_release_first(engine: Engine) -> None:
    defn = build_defn(limit=8, period="quarter")
    ledger = Ledger(engine)
    case = unique("c")
    ledger.reserve(defn, date(2024, 1, 5), case)
    with pytest.raises(HeldInOtherPeriodError):
        ledger.reserve(defn, date(2024, 4, 5), case)
    ledger.release(case)
    assert ledger.reserve(defn, date(2024, 4, 5), case).period_key == "2024-Q2"


def test_peek_writes_nothing(engine: Engine) -> None:
    defn = build_defn(limit=1)
    ledger = Ledger(engine)
    case = unique("c")
    dry = ledger.peek(defn, ON, case)
    assert (dry.granted, dry.place_no, dry.used) == (True, 1, 1)
    assert places_of(engine, defn.id) == 0
    assert ledger.usage(defn, "2024").used == 0
    assert ledger.reserve(defn, ON, case) == dry
    assert ledger.peek(defn, ON, case).already_held
    refused = ledger.peek(defn, ON, unique("c"))
    assert not refused.granted


def test_on_commit_failure_writes_nothing(engine: Engine) -> None:
    defn = build_defn(limit=1)
    ledger = Ledger(engine)
    case = unique("c")

    class Boom(Exception):
        pass

    def audit_then_fail(conn: Connection) -> None:
        append_audit(
            conn,
            kind="decision",
            request_json="{}",
            response_json="{}",
            actor_role="t",
            case_id=case,
        )
        raise Boom

    with pytest.raises(Boom):
        ledger.reserve(defn, ON, case, on_commit=audit_then_fail)
    assert places_of(engine, defn.id) == 0
    assert ledger.usage(defn, "2024").used == 0
    with engine.connect() as conn:
        assert list_audit(conn, case_id=case) == []
    assert ledger.reserve(defn, ON, case).place_no == 1


def test_place_and_audit_row_commit_together(engine: Engine) -> None:
    defn = build_defn(limit=1)
    ledger = Ledger(engine)
    case = unique("c")
    seen: list[Reservation] = []

    def audit(conn: Connection, answer: Reservation) -> None:
        seen.append(answer)
        append_audit(
            conn,
            kind="decision",
            request_json="{}",
            response_json=answer.model_dump_json(),
            actor_role="caseworker",
            case_id=case,
            idempotency_key=unique("idem"),
        )

    answer = ledger.reserve(defn, ON, case, on_result=audit)
    assert seen == [answer]
    with engine.connect() as conn:
        rows = list_audit(conn, case_id=case)
        total = conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
    assert len(rows) == 1 and total >= 1
    assert Reservation.model_validate_json(rows[0].response_json) == answer


def test_refusal_also_runs_the_callback(engine: Engine) -> None:
    defn = build_defn(limit=1)
    ledger = Ledger(engine)
    ledger.reserve(defn, ON, unique("c"))
    calls: list[bool] = []
    ledger.reserve(defn, ON, unique("c"), on_result=lambda _c, a: calls.append(a.granted))
    assert calls == [False]


def test_dates_outside_validity_and_bad_case_ids(engine: Engine) -> None:
    defn = build_defn(valid_from=date(2024, 1, 1), valid_until=date(2024, 12, 31))
    ledger = Ledger(engine)
    with pytest.raises(NotGovernedError):
        ledger.reserve(defn, date(2025, 1, 1), unique("c"))
    with pytest.raises(InvalidCaseIdError):
        ledger.reserve(defn, ON, "")
    with pytest.raises(InvalidCaseIdError):
        ledger.reserve(defn, ON, "x" * 201)


def test_usage_all_lists_used_periods(engine: Engine) -> None:
    quarterly = build_defn(limit=8, period="quarter")
    yearly = build_defn(kind="target", limit=3)
    ledger = Ledger(engine)
    ledger.reserve(quarterly, date(2024, 1, 5), unique("c"))
    ledger.reserve(quarterly, date(2024, 8, 5), unique("c"))
    ledger.reserve(yearly, ON, unique("c"))
    lines = ledger.usage_all([quarterly, yearly])
    got = {(u.quota_id, u.period_key, u.used, u.limit) for u in lines}
    assert got == {
        (quarterly.id, "2024-Q1", 1, 2),
        (quarterly.id, "2024-Q3", 1, 2),
        (yearly.id, "2024", 1, 3),
    }


def impatient_engine(backend: str, request: pytest.FixtureRequest) -> Engine:
    """An engine on the test database that gives up on a lock within ~0.1 s."""
    if backend == "sqlite":
        return make_engine(request.getfixturevalue("sqlite_url"), sqlite_busy_timeout_ms=50)
    url = make_url(request.getfixturevalue("pg_url"))
    options = f"{url.query['options']} -clock_timeout=100"
    return make_engine(url.update_query_dict({"options": options}).render_as_string(False))


def test_a_lock_held_too_long_gives_a_typed_error_and_no_write(
    engine: Engine, backend: str, request: pytest.FixtureRequest
) -> None:
    defn = build_defn(limit=5)
    Ledger(engine).reserve(defn, ON, unique("c"))  # the counter row exists
    impatient = impatient_engine(backend, request)
    ledger = Ledger(impatient, max_attempts=3, backoff_seconds=0.01)
    case = unique("c")
    try:
        with engine.connect() as blocker, blocker.begin():
            blocker.execute(  # SQLite: BEGIN IMMEDIATE holds the write lock; PostgreSQL: row lock
                select(quota_counters.c.used).where(quota_counters.c.quota_id == defn.id).with_for_update()
            )
            with pytest.raises(LedgerBusyError) as caught:
                ledger.reserve(defn, ON, case)
            assert caught.value.attempts == 3
        assert ledger.usage(defn, "2024").used == 1
        assert ledger.reserve(defn, ON, case).place_no == 2
    finally:
        impatient.dispose()


def test_a_write_alone_waits_out_a_lock_as_every_write_does(
    engine: Engine, backend: str, request: pytest.FixtureRequest
) -> None:
    """The single autocommit statement of `write_alone`: a lock wait is retried, then a typed
    error with nothing written; once the lock is gone it commits."""
    impatient = impatient_engine(backend, request)
    ledger = Ledger(impatient, max_attempts=3, backoff_seconds=0.01)
    case = unique("alone")

    def write(conn: Connection) -> None:
        append_audit(conn, kind="decision", request_json="{}", response_json="{}", actor_role="test", case_id=case)

    def written() -> int:
        with engine.connect() as conn:
            return len(list_audit(conn, case_id=case))

    try:
        with engine.connect() as blocker, blocker.begin():  # SQLite: BEGIN IMMEDIATE holds the write lock
            if backend == "postgres":
                blocker.execute(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))
            with pytest.raises(LedgerBusyError) as caught:
                ledger.write_alone(write)
            assert caught.value.attempts == 3
        assert written() == 0
        ledger.write_alone(write)
        assert written() == 1
    finally:
        impatient.dispose()
