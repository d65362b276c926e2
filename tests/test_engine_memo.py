"""The per-question engine memo: identical (ruleset, encoded fact) runs are asked once, and
counterfactuals computed with it equal those computed run by run."""

from __future__ import annotations

import copy
import importlib
import json
from pathlib import Path
from typing import Any

import pytest

import kmrules
from kmrules.counterfactual import granting_variants, salary_needed
from kmrules.decide import decide_resolved, fact_types, prepare
from kmrules.engine import DurableBackend, EngineMemo
from kmrules.factset import derive_facts

engine_module = importlib.import_module("kmrules.engine")
EXAMPLE = json.loads((Path(__file__).parent.parent / "examples" / "knowledge_migrant_2023.json").read_text())


def _request(salary: float, birth: str = "1991-01-10", day: str = "2024-03-15") -> dict[str, Any]:
    request = copy.deepcopy(EXAMPLE)
    request["case"]["job"]["gross_monthly_salary"] = salary
    request["case"]["applicant"]["birth_date"] = birth
    request["case"]["application_date"] = day
    return request


@pytest.fixture
def engine_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the real durable_rules assert/collect/retract round trips."""
    calls: list[int] = []
    real = engine_module._assert_collect_retract

    def counted(*args: Any) -> list[str]:
        calls.append(1)
        return real(*args)  # type: ignore[no-any-return]

    monkeypatch.setattr(engine_module, "_assert_collect_retract", counted)
    return calls


def test_a_memo_answers_the_same_run_without_the_engine(engine_calls: list[int]) -> None:
    book = kmrules.get_rulebook()
    prepared = prepare(book, _request(4000))
    facts, _ = derive_facts(prepared.rules, prepared.case_facts)
    backend, memo = DurableBackend(), EngineMemo()
    types = fact_types(book, prepared.rules)
    first = backend.run(prepared.rules, facts, types, memo)
    again = backend.run(prepared.rules, facts, types, memo)
    assert len(engine_calls) == 1 and again == first
    again["KM-SPONSOR"] = "fail"  # a caller changing its copy does not change the memo
    assert backend.run(prepared.rules, facts, types, memo) == first
    other = {**facts, "job.gross_monthly_salary": 9000.0}
    assert backend.run(prepared.rules, other, types, memo) != first  # another fact: a new run
    assert len(engine_calls) == 2


def test_without_a_memo_every_run_reaches_the_engine(engine_calls: list[int]) -> None:
    book = kmrules.get_rulebook()
    prepared = prepare(book, _request(4000))
    facts, _ = derive_facts(prepared.rules, prepared.case_facts)
    backend = DurableBackend()
    for _ in range(3):
        backend.run(prepared.rules, facts, fact_types(book, prepared.rules))
    assert len(engine_calls) == 3


@pytest.mark.parametrize(
    ("salary", "birth", "day"),
    [
        (3000, "1980-05-01", "2024-03-15"),
        (2900, "1999-02-01", "2024-07-01"),
        (5000, "1980-05-01", "2023-03-15"),
        (5600, "1970-12-31", "2025-01-02"),
        (2700, "1996-06-30", "2026-02-01"),
    ],
)
def test_counterfactuals_with_the_memo_equal_those_run_by_run(salary: float, birth: str, day: str) -> None:
    book = kmrules.get_rulebook()
    prepared = prepare(book, _request(salary, birth, day))
    with_memo = kmrules.decide(_request(salary, birth, day))
    assert with_memo.outcome == "refused"  # every case here is a threshold refusal
    plain = decide_resolved(book, prepared.rules, prepared.case_facts, explain_more=False)
    needed = salary_needed(book, prepared.rules, prepared.case_facts, plain)
    assert needed is not None
    assert with_memo.amounts["salary_needed"].value == needed.value
    assert with_memo.counterfactuals["variants_that_grant"] == granting_variants(
        book, "knowledge_migrant", prepared.case_facts, "baseline"
    )


def test_a_refusal_skips_variants_that_read_the_same(engine_calls: list[int]) -> None:
    """km_quota_2024 and km_target_2024 change no criterion or parameter of the case: their
    question is the refusal's own, so the memo answers it."""
    book = kmrules.get_rulebook()
    request = _request(3000, "1980-05-01", "2024-03-15")
    prepared = prepare(book, request)
    memo = EngineMemo()
    decision = decide_resolved(book, prepared.rules, prepared.case_facts, memo=memo)
    before = len(engine_calls)
    granting_variants(book, "knowledge_migrant", prepared.case_facts, "baseline", memo)
    with_memo = len(engine_calls) - before
    granting_variants(book, "knowledge_migrant", prepared.case_facts, "baseline")
    without = len(engine_calls) - before - with_memo
    assert decision.outcome == "refused"
    assert with_memo < without
