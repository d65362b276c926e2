"""What makes a decision cheaper must not change it: the per-question engine memo (identical
(ruleset, encoded fact) runs are asked once), the shared-prefix order of compiled comparisons,
and the cached variant stacks and resolutions."""

from __future__ import annotations

import copy
import datetime as dt
import importlib
import json
from pathlib import Path
from typing import Any

import pytest

import kmrules
from kmrules.counterfactual import granting_variants, salary_needed
from kmrules.decide import decide_resolved, fact_types, prepare
from kmrules.engine import DurableBackend, EngineMemo
from kmrules.errors import UnknownVariantError
from kmrules.factset import derive_facts
from kmrules.overlay import stack_for
from kmrules.resolve import resolve
from kmrules.rulecompile import leaf_order, pattern

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


def test_comparisons_most_shared_come_first_in_every_pattern() -> None:
    a, b, c = ("k__x", "eq", True), ("f__y", "gt", 3), ("f__z", "eq", "TR")
    terms = [frozenset({a, b}), frozenset({a, c}), frozenset({a, b, c})]
    order = leaf_order(terms)
    assert order[a] < order[b] < order[c]  # a in 3 terms, b and c in 2: the tie goes by text
    assert pattern(frozenset({c, b, a}), order) == {
        "$and": [{"kind": "case"}, {"k__x": True}, {"$gt": {"f__y": 3}}, {"f__z": "TR"}]
    }
    assert leaf_order(list(reversed(terms))) == order  # the order of the terms does not matter


def test_named_variant_stacks_are_built_once_and_unknown_ids_still_fail() -> None:
    book = kmrules.get_rulebook()
    first = stack_for(book, "km_raise_criteria_10pct")
    assert stack_for(book, "km_raise_criteria_10pct") is first
    with pytest.raises(UnknownVariantError):
        stack_for(book, "no_such_variant")
    assert "no_such_variant" not in book.named_stacks


def test_a_day_resolves_to_its_own_date_from_the_cache() -> None:
    book = kmrules.get_rulebook()
    stack = stack_for(book, "baseline")
    one = resolve(book, "knowledge_migrant", stack, dt.date(2024, 3, 15))
    other = resolve(book, "knowledge_migrant", stack, dt.date(2024, 3, 16))
    assert one.on == dt.date(2024, 3, 15) and other.on == dt.date(2024, 3, 16)
    assert one.param_values == other.param_values and one.structure_key == other.structure_key
    assert resolve(book, "knowledge_migrant", stack, dt.date(2024, 3, 15)) is one


def _keys_read(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if not key.startswith("$") and key not in ("m", "kind"):
                out.add(key)
            _keys_read(value, out)
    elif isinstance(node, list):
        for item in node:
            _keys_read(item, out)
    return out


def test_the_engine_is_sent_only_the_short_keys_its_patterns_read() -> None:
    """Every property of an asserted fact costs durable_rules work at each alpha node: the fact
    carries exactly the keys some pattern reads (short names), plus the case marker and serial."""
    from kmrules.engine import encode_fact
    from kmrules.rulecompile import fact_key, known_key

    book = kmrules.get_rulebook()
    prepared = prepare(book, _request(4000))
    facts, _ = derive_facts(prepared.rules, prepared.case_facts)
    compiled = DurableBackend().compiled(prepared.rules, fact_types(book, prepared.rules))
    read = set()
    for spec in compiled.definition.values():
        _keys_read(spec["all"], read)
    fact = encode_fact(compiled, facts, prepared.rules.param_values)
    assert set(fact) == read | {"kind", "serial"}
    assert all(len(key) <= 4 for key in read)
    readable = set(compiled.names.values())
    assert known_key("job.gross_monthly_salary") in readable  # every salary comparison is guarded
    assert fact_key("job.gross_monthly_salary") not in readable  # compared only as a difference
    assert fact_key("applicant.nationality") in readable
