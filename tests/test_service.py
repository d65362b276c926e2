"""DecisionService on real SQLite and PostgreSQL: quota refusals, targets, dry runs, idempotency,
the receipt's ledger state, and the audit row committing with the place (or neither)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from concurrency_helpers import all_at_once
from service_helpers import HERE, count, fresh_database, km_request, make_rules_dir
from sqlalchemy import Connection, Engine, event
from sqlalchemy.pool import Pool

import kmrules.service as service_module
from kmrules.errors import KmrulesError, RequestError
from kmrules.quota.errors import HeldInOtherPeriodError, NothingHeldError
from kmrules.quota.wiring import QuotaDefinitionConflictError
from kmrules.service import (
    DecisionNotFoundError,
    DecisionService,
    IdempotencyConflictError,
    RecordedDecision,
    UnknownQuotaError,
)
from kmrules.store.audit import append_audit, list_audit
from kmrules.store.database import make_engine


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_rules_dir(tmp_path_factory.mktemp("service"))


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    with fresh_database(backend, tmp_path) as url:
        yield url


@pytest.fixture
def service(db_url: str, rules_dir: Path) -> Iterator[DecisionService]:
    with DecisionService(database_url=db_url, rules_dir=rules_dir) as svc:
        yield svc


@pytest.fixture
def engine(service: DecisionService, db_url: str) -> Iterator[Engine]:
    """A second engine on the same database, to look at what was really committed."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


def test_hard_quota_refuses_once_full(service: DecisionService, engine: Engine) -> None:
    granted = [service.decide(km_request("test_quota_3", case_id=f"c{i}")) for i in range(3)]
    assert [r.decision.outcome for r in granted] == ["granted"] * 3
    assert [(q.result, q.used) for r in granted for q in r.decision.quota] == [
        ("place_taken", 1),
        ("place_taken", 2),
        ("place_taken", 3),
    ]

    refused = service.decide(km_request("test_quota_3", case_id="c3")).decision
    assert refused.outcome == "refused"
    assert refused.failing() == []  # every criterion passes: the quota refuses
    (finding,) = refused.quota
    assert finding.model_dump(exclude={"explanation"}) == {
        "quota": "q3",
        "kind": "quota",
        "limit": 3,
        "used": 3,
        "period": "2024",
        "seed_section": "2.11",
        "result": "full",
    }
    assert "is full: 3 of 3 places used" in finding.explanation and "§2.11" in finding.explanation
    assert count(engine, quota_id="q3") == 3
    assert count(engine, case_id="c3") == 0
    assert count(engine, audit=True) == 4
    assert service.ledger.verify() == []


def test_target_grants_past_the_figure_and_says_so(service: DecisionService, engine: Engine) -> None:
    results = [service.decide(km_request("test_target_2", case_id=f"t{i}")).decision for i in range(3)]
    assert [d.outcome for d in results] == ["granted"] * 3
    assert [(q.result, q.used, q.limit) for d in results for q in d.quota] == [
        ("within_target", 1, 2),
        ("within_target", 2, 2),
        ("target_exceeded", 3, 2),
    ]
    assert "exceeded by 1" in results[2].quota[0].explanation
    assert count(engine, quota_id="t2") == 3


def test_receipt_names_the_ledger_state_seen(service: DecisionService, backend: str) -> None:
    service.decide(km_request("test_quota_3", case_id="first"))
    decision = service.decide(km_request("test_quota_3", case_id="second")).decision
    assert decision.receipt.ledger == {
        "backend": "sqlite" if backend == "sqlite" else "postgresql",
        "case_id": "second",
        "case_id_source": "request",
        "dry_run": False,
        "what_if": False,
        "quotas": [
            {
                "quota": "q3",
                "kind": "quota",
                "period": "2024",
                "limit": 3,
                "used_before": 1,
                "used_after": 2,
                "place_no": 2,
                "taken": True,
                "already_held": False,
            }
        ],
    }
    again = service.decide(km_request("test_quota_3", case_id="second")).decision
    assert again.quota[0].result == "already_held"
    assert again.receipt.ledger is not None
    line = again.receipt.ledger["quotas"][0]
    assert (line["used_before"], line["used_after"], line["place_no"], line["taken"]) == (2, 2, 2, False)


def test_dry_run_reads_the_ledger_and_takes_nothing(service: DecisionService, engine: Engine) -> None:
    dry = service.decide(km_request("test_quota_3", case_id="d0", dry_run=True)).decision
    assert dry.outcome == "granted"
    assert [(q.result, q.used) for q in dry.quota] == [("dry_run", 0)]
    assert "a place would be taken (1 of 3)" in dry.quota[0].explanation
    assert dry.receipt.ledger is not None and dry.receipt.ledger["dry_run"] is True
    assert dry.receipt.ledger["quotas"][0]["taken"] is False
    assert count(engine, quota_id="q3") == 0

    for i in range(3):
        service.decide(km_request("test_quota_3", case_id=f"d{i + 1}"))
    full = service.decide(km_request("test_quota_3", case_id="d0", dry_run=True)).decision
    assert full.outcome == "refused"  # what the real decision would say
    assert [(q.result, q.used) for q in full.quota] == [("dry_run", 3)]
    assert "would be refused" in full.quota[0].explanation
    assert count(engine, quota_id="q3") == 3
    assert count(engine, case_id="d0") == 0
    assert count(engine, case_id="d0", audit=True) == 2  # dry runs are audited too


def test_what_if_package_is_always_a_dry_run(service: DecisionService, engine: Engine) -> None:
    variant = {"base": ["test_quota_3"], "parameters": {"knowledge_migrant.salary.age_30_plus": 5500}}
    decision = service.decide(km_request(variant, case_id="w")).decision  # no dry_run flag
    assert decision.outcome == "granted"
    assert [q.result for q in decision.quota] == ["dry_run"]
    assert decision.receipt.ledger is not None
    assert (decision.receipt.ledger["dry_run"], decision.receipt.ledger["what_if"]) == (True, True)
    assert count(engine, quota_id="q3") == 0


def test_refused_and_undetermined_take_no_place_but_are_audited(service: DecisionService, engine: Engine) -> None:
    low = service.decide(km_request("test_quota_3", case_id="low", salary=3000)).decision
    assert (low.outcome, low.quota, low.receipt.ledger) == ("refused", [], None)
    assert low.failing()
    unknown = km_request("test_quota_3", case_id="unknown")
    del unknown["case"]["applicant"]["birth_date"]
    unknown["case"]["job"]["gross_monthly_salary"] = 4500  # between the under-30 and 30+ criteria
    undetermined = service.decide(unknown).decision
    assert (undetermined.outcome, undetermined.quota) == ("undetermined", [])
    assert count(engine, quota_id="q3") == 0
    assert count(engine, case_id="low", audit=True) == 1
    assert count(engine, case_id="unknown", audit=True) == 1


def test_segment_limits_who_counts(service: DecisionService, engine: Engine) -> None:
    finance = service.decide(km_request("test_quota_ict_1", case_id="fin", sector="finance")).decision
    assert (finance.outcome, finance.quota, finance.receipt.ledger) == ("granted", [], None)
    assert service.decide(km_request("test_quota_ict_1", case_id="ict1")).decision.outcome == "granted"
    assert service.decide(km_request("test_quota_ict_1", case_id="ict2")).decision.outcome == "refused"
    assert service.decide(km_request("test_quota_ict_1", case_id="fin2", sector="finance")).decision.outcome == (
        "granted"
    )
    assert count(engine, quota_id="q_ict_1") == 1


def test_several_quotas_are_all_or_nothing(service: DecisionService, engine: Engine) -> None:
    both = ["test_quota_3", "test_quota_ict_1"]
    first = service.decide(km_request(both, case_id="a")).decision
    assert [(q.quota, q.result) for q in first.quota] == [("q3", "place_taken"), ("q_ict_1", "place_taken")]

    blocked = service.decide(km_request(both, case_id="b")).decision
    assert blocked.outcome == "refused"
    assert [(q.quota, q.result) for q in blocked.quota] == [("q_ict_1", "full")]
    assert blocked.receipt.ledger is not None
    assert [(q["quota"], q["taken"], q["used_before"], q["used_after"]) for q in blocked.receipt.ledger["quotas"]] == [
        ("q3", False, 1, 1),
        ("q_ict_1", False, 1, 1),
    ]
    assert count(engine, case_id="b") == 0  # the room in q3 was not taken
    assert count(engine, quota_id="q3") == 1

    other = service.decide(km_request(both, case_id="c", sector="finance")).decision
    assert [(q.quota, q.result, q.used) for q in other.quota] == [("q3", "place_taken", 2)]
    assert service.ledger.verify() == []


def test_idempotency_key_replays_the_first_answer(service: DecisionService, engine: Engine) -> None:
    request = km_request("test_quota_3", case_id="idem")
    first = service.decide(request, idempotency_key="key-1", actor_role="caseworker")
    again = service.decide(json.loads(json.dumps(request)), idempotency_key="key-1")
    assert (first.idempotent_replay, again.idempotent_replay) == (False, True)
    assert (again.id, again.created_at) == (first.id, first.created_at)
    assert again.decision.model_dump(mode="json") == first.decision.model_dump(mode="json")
    assert count(engine, case_id="idem") == 1
    assert count(engine, case_id="idem", audit=True) == 1

    with pytest.raises(IdempotencyConflictError) as caught:
        service.decide(km_request("test_quota_3", case_id="idem", salary=7000), idempotency_key="key-1")
    assert isinstance(caught.value, KmrulesError)
    with pytest.raises(RequestError):
        service.decide(request, idempotency_key="k" * 201)
    with engine.connect() as conn:
        (row,) = list_audit(conn, case_id="idem")
    assert (row.kind, row.actor_role, row.idempotency_key) == ("decision", "caseworker", "key-1")


def test_concurrent_retries_with_one_key_decide_once(service: DecisionService, engine: Engine) -> None:
    request = km_request("test_quota_3", case_id="race")
    answers: list[RecordedDecision] = []
    errors: list[BaseException] = []
    start = threading.Barrier(12)

    def run() -> None:
        try:
            start.wait()
            answers.append(service.decide(request, idempotency_key="race-key"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({a.id for a in answers}) == 1
    assert sum(not a.idempotent_replay for a in answers) == 1
    assert count(engine, case_id="race") == 1
    assert count(engine, case_id="race", audit=True) == 1


def test_derived_case_id_ignores_how_the_json_is_spelled(service: DecisionService, engine: Engine) -> None:
    request = km_request("test_quota_3")
    first = service.decide(request).decision
    spelled = json.loads(json.dumps(request, sort_keys=True))
    spelled["case"]["job"]["gross_monthly_salary"] = 6000.0
    spelled["case"]["permit_expiry_date"] = None
    second = service.decide(spelled).decision
    assert first.receipt.ledger is not None and second.receipt.ledger is not None
    case_id = first.receipt.ledger["case_id"]
    assert case_id.startswith("case-") and len(case_id) == 37
    assert first.receipt.ledger["case_id_source"] == "derived"
    assert second.receipt.ledger["case_id"] == case_id
    assert second.quota[0].result == "already_held"
    other = service.decide(km_request("test_quota_3", salary=6001)).decision
    assert other.receipt.ledger is not None and other.receipt.ledger["case_id"] != case_id
    assert count(engine, quota_id="q3") == 2


def test_get_decision_reads_the_audit_log(service: DecisionService) -> None:
    recorded = service.decide(km_request("test_quota_3", case_id="g"))
    found = service.get_decision(recorded.id)
    assert (found.id, found.idempotent_replay) == (recorded.id, False)
    assert found.decision.model_dump(mode="json") == recorded.decision.model_dump(mode="json")
    with pytest.raises(DecisionNotFoundError):
        service.get_decision("no-such-id")


def test_release_frees_the_place_and_is_audited(service: DecisionService, engine: Engine) -> None:
    for i in range(3):
        service.decide(km_request("test_quota_3", case_id=f"r{i}"))
    assert service.decide(km_request("test_quota_3", case_id="late")).decision.outcome == "refused"

    (released,) = service.release("r1", actor_role="operator")
    assert (released.quota_id, released.period_key, released.place_no) == ("q3", "2024", 2)
    with engine.connect() as conn:
        rows = list_audit(conn, case_id="r1", kind="release")
    assert len(rows) == 1 and rows[0].actor_role == "operator"
    assert json.loads(rows[0].response_json)[0]["place_no"] == 2
    with pytest.raises(DecisionNotFoundError):
        service.get_decision(rows[0].id)  # a release is not a decision
    with pytest.raises(NothingHeldError):
        service.release("r1")

    late = service.decide(km_request("test_quota_3", case_id="late")).decision
    assert [(q.result, q.used) for q in late.quota] == [("place_taken", 3)]
    assert late.receipt.ledger is not None and late.receipt.ledger["quotas"][0]["place_no"] == 2


def test_quota_status_lists_current_periods(service: DecisionService) -> None:
    service.decide(km_request("test_quota_3", case_id="s1"))
    service.decide(km_request("test_quota_2024_q", case_id="s2", on="2024-05-02"))
    status = {(u.quota_id, u.period_key): (u.used, u.limit) for u in service.quota_status(today=date(2026, 2, 1))}
    assert status == {
        ("q3", "2024"): (1, 3),
        ("q3", "2026"): (0, 3),
        ("q10", "2026"): (0, 10),
        ("q50", "2026"): (0, 50),
        ("t2", "2026"): (0, 2),
        ("q_ict_1", "2026"): (0, 1),
        ("q_quarterly", "2024-Q2"): (1, 2),
        ("q_quarterly", "2024-Q4"): (0, 2),  # outside its validity: the nearest period it governs
    }
    assert [u.period_key for u in service.quota_status("q3", today=date(2024, 6, 1))] == ["2024"]
    with pytest.raises(UnknownQuotaError):
        service.quota_status("nope")


def test_a_case_holding_another_period_gets_a_typed_error_and_no_audit(
    service: DecisionService, engine: Engine
) -> None:
    service.decide(km_request("test_quota_2024_q", case_id="moved", on="2024-02-01"))
    with pytest.raises(HeldInOtherPeriodError):
        service.decide(km_request("test_quota_2024_q", case_id="moved", on="2024-05-01"))
    assert count(engine, case_id="moved", audit=True) == 1


def test_a_failing_audit_write_leaves_no_place(
    service: DecisionService, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = append_audit

    class Crash(Exception):
        pass

    def write_then_fail(conn: Connection, **kwargs: Any) -> Any:
        real(conn, **kwargs)
        raise Crash

    monkeypatch.setattr(service_module, "append_audit", write_then_fail)
    with pytest.raises(Crash):
        service.decide(km_request("test_quota_3", case_id="crash"), idempotency_key="crash-key")
    assert (count(engine, case_id="crash"), count(engine, case_id="crash", audit=True)) == (0, 0)

    monkeypatch.undo()
    retry = service.decide(km_request("test_quota_3", case_id="crash"), idempotency_key="crash-key")
    assert (retry.idempotent_replay, retry.decision.quota[0].result) == (False, "place_taken")
    assert (count(engine, case_id="crash"), count(engine, case_id="crash", audit=True)) == (1, 1)


def test_sigkill_mid_decision_leaves_neither_place_nor_audit(
    service: DecisionService, engine: Engine, db_url: str, rules_dir: Path
) -> None:
    request = km_request("test_quota_3", case_id="victim")
    with subprocess.Popen(
        [sys.executable, str(HERE), "hang", db_url, str(rules_dir), json.dumps(request), "victim-key"],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "IN_TX"  # place and audit row written, not committed
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    assert (count(engine, case_id="victim"), count(engine, case_id="victim", audit=True)) == (0, 0)
    assert service.ledger.verify() == []
    retry = service.decide(request, idempotency_key="victim-key")
    assert (retry.idempotent_replay, retry.decision.quota[0].result) == (False, "place_taken")
    assert service.decide(request, idempotency_key="victim-key").idempotent_replay
    assert (count(engine, case_id="victim"), count(engine, case_id="victim", audit=True)) == (1, 1)


@pytest.mark.parametrize("repetition", range(3))
def test_200_concurrent_decisions_against_a_quota_of_50(
    service: DecisionService, engine: Engine, repetition: int
) -> None:
    threads_n, limit = 200, 50
    answers = all_at_once(
        lambda i: service.decide(km_request("test_quota_50", case_id=f"p{repetition}-{i}")), threads_n
    )

    granted = [a.decision for a in answers if a.decision.outcome == "granted"]
    refused = [a.decision for a in answers if a.decision.outcome == "refused"]
    assert (len(granted), len(refused)) == (limit, threads_n - limit)
    assert sorted(d.quota[0].used for d in granted) == list(range(1, limit + 1))
    assert all([(q.result, q.used) for q in d.quota] == [("full", limit)] for d in refused)
    assert count(engine, quota_id="q50") == limit
    assert count(engine, audit=True) == threads_n
    assert service.ledger.verify() == []


def test_shipped_quota_and_target_variants(tmp_path: Path) -> None:
    with DecisionService.embedded(tmp_path / "data") as service:
        defns = {d.id: d for d in service.quota_definitions()}
        quota, target = defns["km_quota_2024"], defns["km_target_2024"]
        assert (quota.kind, quota.limit, quota.period, quota.seed_section) == ("quota", 22000, "year", "2.11")
        assert (quota.valid_from, quota.valid_until) == (date(2024, 1, 1), date(2024, 12, 31))
        assert (target.kind, target.limit, target.period, target.rollover) == ("target", 22000, "quarter", True)
        both = ["km_quota_2024", "km_target_2024"]

        first = service.decide(km_request(both, case_id="shipped")).decision
        assert [(q.quota, q.result, q.limit, q.period) for q in first.quota] == [
            ("km_quota_2024", "place_taken", 22000, "2024"),
            ("km_target_2024", "within_target", 5500, "2024-Q1"),
        ]
        extension = km_request(both, case_id="ext", kind="extension")
        extension["case"]["applicant"]["first_admission"] = {"date": "2022-03-01", "criterion": "age_30_plus"}
        ext = service.decide(extension).decision
        assert (ext.outcome, ext.quota) == ("granted", [])  # an extension takes no place
        later = service.decide(km_request(both, case_id="y2025", on="2025-02-01", salary=6500)).decision
        assert (later.outcome, later.quota) == ("granted", [])  # 2025 is not governed


def test_conflicting_definitions_of_one_quota_id_are_refused(tmp_path: Path) -> None:
    rules = make_rules_dir(tmp_path)
    text = (rules / "variants" / "test_quota_3.yaml").read_text()
    clash = text.replace('"test_quota_3"', '"test_quota_3b"').replace('"limit": 3', '"limit": 4')
    (rules / "variants" / "test_quota_3b.yaml").write_text(clash)
    with pytest.raises(QuotaDefinitionConflictError, match="q3"):
        DecisionService(database_url=f"sqlite:///{tmp_path / 'x.sqlite'}", rules_dir=rules)


def test_unknown_segment_fact_does_not_slip_past_a_quota(service: DecisionService, engine: Engine) -> None:
    """test_quota_ict_1 counts ICT jobs only; without job.sector the case is not granted (nobody
    can tell whether it takes a place) and takes no place."""
    request = km_request("test_quota_ict_1", case_id="no-sector", salary=6000)
    del request["case"]["job"]["sector"]
    decision = service.decide(request).decision
    assert decision.outcome == "undetermined"
    assert decision.missing == ["job.sector"]
    finding = next(f for f in decision.findings if f.rule.startswith("QUOTA-"))
    assert finding.result == "undetermined" and finding.legal_basis
    assert count(engine, case_id="no-sector", audit=True) == 1
    assert count(engine, case_id="no-sector") == 0
    with_sector = service.decide(km_request("test_quota_ict_1", case_id="with-sector", salary=6000)).decision
    assert with_sector.outcome == "granted"


@contextlib.contextmanager
def statements_sent(backend: str) -> Iterator[list[tuple[str, bool]]]:
    """(first word, inside a transaction) of every statement the driver is given, whoever
    sends it: SQLAlchemy, or the audit insert that runs on the driver connection (store.driver).
    SQLite: the connection's trace callback (BEGIN and COMMIT included); PostgreSQL: a cursor
    class recording the connection's autocommit state at each execute."""
    seen: list[tuple[str, bool]] = []
    observed: list[Any] = []

    class Recording(psycopg.Cursor[Any]):
        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append((str(query).split()[0].upper(), not self.connection.autocommit))
            return super().execute(query, *args, **kwargs)

    def on_checkout(dbapi: Any, _record: Any, _proxy: Any) -> None:
        observed.append(dbapi)
        if backend == "sqlite":
            dbapi.set_trace_callback(lambda sql: seen.append((sql.split()[0].upper(), dbapi.in_transaction)))
        else:
            dbapi.cursor_factory = Recording

    event.listen(Pool, "checkout", on_checkout)
    try:
        yield seen
    finally:
        event.remove(Pool, "checkout", on_checkout)
        for dbapi in observed:
            if backend == "sqlite":
                dbapi.set_trace_callback(None)
            else:
                dbapi.cursor_factory = psycopg.Cursor


def test_a_decision_no_quota_governs_writes_its_audit_row_as_one_statement(
    service: DecisionService, engine: Engine, backend: str
) -> None:
    """No BEGIN/COMMIT round trips for the audit row alone; a quota decision stays one transaction."""
    with statements_sent(backend) as seen:
        alone = service.decide(km_request("baseline", case_id="alone"))
        alone_statements = list(seen)
        seen.clear()
        service.decide(km_request("test_quota_3", case_id="with-place"))

    assert alone.decision.outcome == "granted"
    assert alone_statements == [("INSERT", False)]  # outside any transaction: it commits by itself
    assert count(engine, case_id="alone", audit=True) == 1
    outside = [name for name, in_transaction in seen if not in_transaction]
    assert outside == (["BEGIN"] if backend == "sqlite" else [])  # the place and its audit row: one transaction
    assert len(seen) > 3
    assert (count(engine, case_id="with-place"), count(engine, case_id="with-place", audit=True)) == (1, 1)
