"""A refusal's counterfactuals skip work that cannot change their answer: the variants under
which a failing criterion is no easier to meet (it reads the same, or only its thresholds moved
the strict way; never changing `variants_that_grant`, and never skipping a variant whose change
reaches a failing criterion through a derived fact), and the salary candidates below the next
value a failing salary criterion compares with."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import kmrules
from kmrules import counterfactual
from kmrules.counterfactual import (
    SALARY,
    _salary_thresholds,
    granting_variants,
    no_easier_criteria,
    results_of,
    salary_needed,
)
from kmrules.decide import decide_prepared, decide_resolved, prepare
from kmrules.overlay import stack_for
from kmrules.resolve import resolve
from kmrules.rulebook import DEFAULT_RULES_DIR, load_rulebook
from kmrules.testing.strategies import requests

DAY = dt.date(2024, 3, 15)


def _rules(book: Any, variant: str, on: dt.date = DAY) -> Any:
    return resolve(book, "knowledge_migrant", stack_for(book, variant), on)


SALARY_CRITERIA = {"KM-SALARY-30PLUS", "KM-SALARY-UNDER30", "KM-SALARY-REDUCED"}


def test_raised_salary_criteria_are_no_easier_and_lowered_ones_are() -> None:
    book = kmrules.get_rulebook()
    baseline, raised = _rules(book, "baseline"), _rules(book, "km_raise_criteria_10pct")
    assert no_easier_criteria(baseline, raised) == {"KM-SPONSOR", "KM-MARKET-CONFORM", *SALARY_CRITERIA}
    # back from the raised figures to the real ones: every salary criterion gets easier
    assert no_easier_criteria(raised, baseline) == {"KM-SPONSOR", "KM-MARKET-CONFORM"}


def test_a_variant_that_changes_a_criterions_conditions_is_not_skipped() -> None:
    """The uniform criterion widens who the 30-and-over criterion applies to and drops the
    under-30 one: both may grant a case the baseline refuses, so neither is in the set."""
    book = kmrules.get_rulebook()
    same = no_easier_criteria(_rules(book, "baseline"), _rules(book, "km_uniform_criterion"))
    assert not {"KM-SALARY-30PLUS", "KM-SALARY-UNDER30"} & same
    assert {"KM-SPONSOR", "KM-MARKET-CONFORM", "KM-SALARY-REDUCED"} <= same


def test_rules_compared_with_themselves_are_no_easier_in_every_criterion() -> None:
    book = kmrules.get_rulebook()
    rules = _rules(book, "baseline")
    assert no_easier_criteria(rules, rules) == {c.id for c in rules.criteria}


def _what_if(book: Any, values: dict[str, int], on: dt.date = DAY) -> Any:
    return resolve(book, "knowledge_migrant", stack_for(book, {"parameters": values}), on)


def test_under_a_negation_the_strict_way_is_reversed(tmp_path: Path) -> None:
    """`not (salary < P)` holds for fewer salaries as P rises, `not (salary >= P)` for more."""
    rules_dir = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules_dir)
    scheme = rules_dir / "schemes" / "knowledge_migrant.yaml"
    text = scheme.read_text()
    plain = "holds_when: {fact: job.gross_monthly_salary, gte: {param: knowledge_migrant.salary.age_30_plus}}"
    negated = "holds_when: {not: {fact: job.gross_monthly_salary, lt: {param: knowledge_migrant.salary.age_30_plus}}}"
    reduced_plain = "holds_when: {fact: job.gross_monthly_salary, gte: {param: knowledge_migrant.salary.reduced}}"
    reduced_never = (
        "holds_when: {not: {fact: job.gross_monthly_salary, gte: {param: knowledge_migrant.salary.reduced}}}"
    )
    assert plain in text and reduced_plain in text
    scheme.write_text(text.replace(plain, negated).replace(reduced_plain, reduced_never))
    book = load_rulebook(rules_dir)
    baseline = _rules(book, "baseline")
    higher = _what_if(book, {"knowledge_migrant.salary.age_30_plus": 9000, "knowledge_migrant.salary.reduced": 9000})
    lower = _what_if(book, {"knowledge_migrant.salary.age_30_plus": 1000, "knowledge_migrant.salary.reduced": 1000})
    assert "KM-SALARY-30PLUS" in no_easier_criteria(baseline, higher)
    assert "KM-SALARY-30PLUS" not in no_easier_criteria(baseline, lower)
    # salary not >= P: easier to meet as P rises, harder as it falls
    assert "KM-SALARY-REDUCED" not in no_easier_criteria(baseline, higher)
    assert "KM-SALARY-REDUCED" in no_easier_criteria(baseline, lower)


SALARY_PARAMS = [
    "knowledge_migrant.salary.age_30_plus",
    "knowledge_migrant.salary.under_30",
    "knowledge_migrant.salary.reduced",
]


@settings(max_examples=300)
@given(
    request=requests("knowledge_migrant", complete=True),
    salary=st.integers(2500, 6000),
    factors=st.lists(st.sampled_from([1.05, 1.25, 1.0, 0.95, 0.8]), min_size=3, max_size=3),
)
def test_a_failing_criterion_that_is_no_easier_fails_under_the_other_rules(
    request: dict[str, Any], salary: int, factors: list[float]
) -> None:
    """The claim the skip rests on, checked by running both rule sets on the engine: any
    case with a salary around the criteria (many threshold refusals), each salary criterion
    of the date raised, kept or lowered by a what-if."""
    book = kmrules.get_rulebook()
    request["case"]["job"]["gross_monthly_salary"] = salary
    prepared = prepare(book, {**request, "variant": "baseline"})
    on = prepared.case_facts["application_date"]
    values = {n: round(prepared.rules.params[n].value * f) for n, f in zip(SALARY_PARAMS, factors, strict=True)}
    other = _what_if(book, values, on)
    before = results_of(book, prepared.rules, prepared.case_facts)
    after = results_of(book, other, prepared.case_facts)
    for rule in no_easier_criteria(prepared.rules, other):
        if before[rule] == "fail":
            assert after[rule] == "fail", (rule, values)


def test_a_parameter_read_only_through_a_derived_fact_changes_the_criterion(tmp_path: Path) -> None:
    """KM-SALARY-REDUCED compares no parameter about the graduation deadline itself: it reads
    the derived fact reduced_deadline_graduation, which is built with one. A variant changing
    that parameter changes the criterion."""
    rules_dir = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules_dir)
    (rules_dir / "variants" / "km_reduced_5y.yaml").write_text(
        "variant:\n"
        "  id: km_reduced_5y\n"
        "  title: Reduced criterion up to 5 years after graduation\n"
        "  description: A test variant.\n"
        '  seed_sections: ["2.11"]\n'
        "  expected_effect: more\n"
        '  legal_basis: [{seed: "§2.11"}]\n'
        "parameters:\n"
        '  knowledge_migrant.reduced.years_after_graduation: {set: 5, reference: "test"}\n'
    )
    book = load_rulebook(rules_dir)
    baseline, longer = _rules(book, "baseline"), _rules(book, "km_reduced_5y")
    reduced = next(c for c in baseline.criteria if c.id == "KM-SALARY-REDUCED")
    assert "knowledge_migrant.reduced.years_after_graduation" not in reduced.required_params
    same = no_easier_criteria(baseline, longer)
    assert "KM-SALARY-REDUCED" not in same
    assert {"KM-SPONSOR", "KM-MARKET-CONFORM"} <= same


EXAMPLE = Path(__file__).parent.parent / "examples" / "knowledge_migrant_2023.json"


def _request(salary: float, birth: str, variant: str = "baseline") -> dict[str, Any]:
    request: dict[str, Any] = json.loads(EXAMPLE.read_text())
    request["variant"] = variant
    request["case"]["job"]["gross_monthly_salary"] = salary
    request["case"]["applicant"]["birth_date"] = birth
    request["case"]["application_date"] = DAY.isoformat()
    return request


def test_the_skip_saves_runs_and_keeps_the_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    book = kmrules.get_rulebook()
    prepared = prepare(book, _request(3000, "1980-05-01"))
    decision = decide_resolved(book, prepared.rules, prepared.case_facts, explain_more=False)
    failing = [f.rule for f in decision.findings if f.result == "fail"]
    assert decision.outcome == "refused" and failing == ["KM-SALARY-30PLUS"]
    runs: list[str] = []
    real = counterfactual.results_of

    def counted(book: Any, rules: Any, *args: Any) -> Any:
        runs.append(rules.stack.label)
        return real(book, rules, *args)

    monkeypatch.setattr(counterfactual, "results_of", counted)
    plain = granting_variants(book, "knowledge_migrant", prepared.case_facts, "baseline")
    every = list(runs)
    runs.clear()
    skipping = granting_variants(
        book, "knowledge_migrant", prepared.case_facts, "baseline", None, prepared.rules, failing
    )
    assert skipping == plain
    # km_search_period_6m and km_under30_avg_wage_2025 change nothing the 30-plus salary
    # criterion reads, km_raise_criteria_10pct only raises its threshold: no run for them; the
    # variants that change its conditions are still run
    assert set(every) - set(runs) == {"km_search_period_6m", "km_under30_avg_wage_2025", "km_raise_criteria_10pct"}
    assert {"km_uniform_criterion", "km_uniform_criterion_no_reduced", "km_tighten_2_11"} <= set(runs)


@settings(max_examples=60)
@given(
    request=requests("knowledge_migrant", complete=True),
    salary=st.integers(2500, 6000),
    variant=st.sampled_from(["baseline", "km_raise_criteria_10pct", "km_uniform_criterion", "km_tighten_2_11"]),
)
def test_skipping_never_changes_which_variants_grant(request: dict[str, Any], salary: int, variant: str) -> None:
    """Complete cases with salaries around the criteria, a recognised sponsor and a regular,
    market-conform job: most are threshold refusals (few inputs filtered out)."""
    book = kmrules.get_rulebook()
    request = {**request, "variant": variant}
    request["case"]["employer"]["recognised_sponsor"] = True
    request["case"]["job"].update(gross_monthly_salary=salary, position="regular", market_conform=True)
    prepared = prepare(book, request)
    decision = decide_prepared(book, prepared)
    assume("variants_that_grant" in decision.counterfactuals)
    assert decision.counterfactuals["variants_that_grant"] == granting_variants(
        book, "knowledge_migrant", prepared.case_facts, variant
    )


def test_a_refusal_under_raised_criteria_still_finds_the_variants_that_grant() -> None:
    """30 and over in March 2024, EUR 5,500: below the criterion raised by 10 % (5,864), above
    the 2024 criterion of 5,331 (reference/dutch-rules-and-figures.md). Every variant that keeps
    the 2024 criterion grants, and the skip must not lose one of them."""
    book = kmrules.get_rulebook()
    prepared = prepare(book, _request(5500, "1980-05-01", "km_raise_criteria_10pct"))
    decision = decide_prepared(book, prepared)
    assert decision.outcome == "refused"
    granting = decision.counterfactuals["variants_that_grant"]
    assert {"km_search_period_6m", "km_under30_avg_wage_2025", "km_uniform_criterion"} <= set(granting)
    assert "km_tighten_2_11" not in granting
    assert granting == granting_variants(book, "knowledge_migrant", prepared.case_facts, "km_raise_criteria_10pct")


def _every_candidate(book: Any, prepared: Any) -> float | None:
    """The search without any skip: every threshold above the salary, in order (the reference)."""
    current = prepared.case_facts[SALARY]
    for candidate in _salary_thresholds(prepared.rules):
        if candidate > current:
            trial = results_of(book, prepared.rules, {**prepared.case_facts, SALARY: candidate})
            if not any(trial[rule] == "fail" for rule in _salary_rules(prepared.rules)):
                return candidate
    return None


def _salary_rules(rules: Any) -> set[str]:
    return {c.id for c in rules.criteria if SALARY in c.observed_facts}


def test_the_salary_search_starts_at_the_failing_criterion(monkeypatch: pytest.MonkeyPatch) -> None:
    """30 and over in March 2024 at EUR 3,000: the under-30 criterion (3,909) is above the salary
    but cannot end a refusal by the 30-and-over criterion (5,331): the search tries 5,331 only."""
    book = kmrules.get_rulebook()
    prepared = prepare(book, _request(3000, "1980-05-01"))
    decision = decide_resolved(book, prepared.rules, prepared.case_facts, explain_more=False)
    tried: list[float] = []
    real = counterfactual.results_of

    def counted(book: Any, rules: Any, facts: Any, *args: Any) -> Any:
        tried.append(facts[SALARY])
        return real(book, rules, facts, *args)

    monkeypatch.setattr(counterfactual, "results_of", counted)
    needed = salary_needed(book, prepared.rules, prepared.case_facts, decision)
    assert needed is not None and needed.value == 5331
    assert tried == [5331.0]


@settings(max_examples=80)
@given(
    request=requests("knowledge_migrant", complete=True),
    salary=st.integers(1500, 7000),
    variant=st.sampled_from(["baseline", "km_raise_criteria_10pct", "km_uniform_criterion", "km_tighten_2_11"]),
)
def test_the_salary_search_finds_what_trying_every_candidate_finds(
    request: dict[str, Any], salary: int, variant: str
) -> None:
    book = kmrules.get_rulebook()
    request = {**request, "variant": variant}
    request["case"]["job"]["gross_monthly_salary"] = salary
    prepared = prepare(book, request)
    decision = decide_resolved(book, prepared.rules, prepared.case_facts, explain_more=False)
    failing = {f.rule for f in decision.findings if f.result == "fail"} & _salary_rules(prepared.rules)
    assume(failing)
    needed = salary_needed(book, prepared.rules, prepared.case_facts, decision)
    expected = _every_candidate(book, prepared)
    assert (needed.value if needed is not None else None) == expected
