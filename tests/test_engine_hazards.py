"""Each durable_rules hazard measured in the rule-core issue is made impossible by the wrapper."""

from __future__ import annotations

import copy
import datetime as dt
import importlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import kmrules
from kmrules.engine import DurableBackend
from kmrules.errors import EngineError, RequestError, UnknownSchemeError, UnknownVariantError
from kmrules.overlay import stack_for
from kmrules.resolve import resolve

decide_module = importlib.import_module("kmrules.decide")
engine_module = importlib.import_module("kmrules.engine")
EXAMPLE = json.loads((Path(__file__).parent.parent / "examples" / "knowledge_migrant_2023.json").read_text())


def _request(**job: Any) -> dict[str, Any]:
    request = copy.deepcopy(EXAMPLE)
    request["case"]["job"].update(job)
    return request


def _resolved() -> Any:
    book = kmrules.get_rulebook()
    return book, resolve(book, "knowledge_migrant", stack_for(book, "baseline"), dt.date(2023, 3, 15))


def test_no_dispatcher_thread_is_started() -> None:
    before = {t.name for t in threading.enumerate()}
    backend = DurableBackend()
    book, rules = _resolved()
    kmrules.decide(EXAMPLE)
    backend.compiled(rules, decide_module.fact_types(book, rules))
    after = {t.name for t in threading.enumerate()}
    assert after == before, after - before


def test_mistyped_fact_is_an_engine_error_not_a_grant() -> None:
    """Bypassing validation, a string salary matches no durable_rules rule: silence is refused."""
    book, rules = _resolved()
    backend = DurableBackend()
    case = kmrules.decide(EXAMPLE)  # the valid case grants
    assert case.outcome == "granted"
    facts = {
        "application_date": dt.date(2023, 3, 15),
        "application_kind": "first",
        "applicant.birth_date": dt.date(1991, 1, 10),
        "applicant.nationality": "IN",
        "applicant.graduation.date": dt.date(2014, 7, 1),
        "applicant.graduation.country": "IN",
        "applicant.graduation.level": "master",
        "applicant.graduation.top200": False,
        "applicant.search_year_permit.held": False,
        "employer.recognised_sponsor": True,
        "job.position": "regular",
        "job.market_conform": True,
        "age_on_application": 32,
    }
    types = decide_module.fact_types(book, rules)
    for wrong in ("5100", "abc", [1], float("nan"), True):
        with pytest.raises(EngineError, match="must be number"):
            backend.run(rules, {**facts, "job.gross_monthly_salary": wrong}, types)


def test_silence_on_a_decidable_criterion_is_an_engine_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove the rules of one criterion from a compiled ruleset: silence must not pass."""
    book, rules = _resolved()
    backend = DurableBackend()
    types = decide_module.fact_types(book, rules)
    index = [c.id for c in rules.criteria].index("KM-SALARY-30PLUS")
    real_drain = engine_module._drain

    def drop(handle: int, state: int) -> list[str]:
        return [n for n in real_drain(handle, state) if not n.startswith(f"{index}__")]

    monkeypatch.setattr(engine_module, "_drain", drop)
    facts = {
        "application_date": dt.date(2023, 3, 15),
        "application_kind": "first",
        "applicant.birth_date": dt.date(1980, 1, 1),
        "job.position": "regular",
        "job.gross_monthly_salary": 6000.0,
        "age_on_application": 43,
    }
    with pytest.raises(EngineError, match="failed open"):
        backend.run(rules, facts, types)


def test_engine_failure_is_raised_typed_and_the_host_is_replaced() -> None:
    book, rules = _resolved()
    backend = DurableBackend()
    types = decide_module.fact_types(book, rules)
    compiled = backend.compiled(rules, types)
    compiled.handle = 10**9  # an engine handle that does not exist: the C engine raises
    facts = {"application_date": dt.date(2023, 3, 15)}
    with pytest.raises(EngineError, match="durable_rules failed"):
        backend.run(rules, facts, types)
    fresh = backend.compiled(rules, types)
    assert fresh is not compiled  # a fresh host, never the broken one
    results = backend.run(rules, facts, types)
    assert set(results.values()) <= {"pass", "fail", "not_applicable", "undetermined"}


def test_no_python_action_runs_inside_durable_rules() -> None:
    """The registered actions raise if ever dispatched; thousands of decisions never do."""
    for salary in range(4000, 6000, 7):
        kmrules.decide(_request(gross_monthly_salary=float(salary)))
    host = decide_module._DURABLE.compiled(*_resolved_types()).host
    with pytest.raises(EngineError, match="must not be"):
        host.get_ruleset(decide_module._DURABLE.compiled(*_resolved_types()).name)._actions["sentinel"].root._func(None)


def _resolved_types() -> tuple[Any, Any]:
    book, rules = _resolved()
    return rules, decide_module.fact_types(book, rules)


def test_identical_fact_twice_is_fine() -> None:
    first = kmrules.decide(EXAMPLE)
    second = kmrules.decide(EXAMPLE)
    assert first == second


def test_state_is_clean_after_decisions() -> None:
    book, rules = _resolved()
    for salary in (1000, 5008, 9000):
        kmrules.decide(_request(gross_monthly_salary=salary))
    compiled = decide_module._DURABLE.compiled(rules, decide_module.fact_types(book, rules))
    assert compiled.host.get_facts(compiled.name) == []


def test_many_threads_share_the_engine_safely() -> None:
    requests = [_request(gross_monthly_salary=float(s)) for s in range(4900, 5100, 1)]
    expected = [kmrules.decide(r, backend="oracle").outcome for r in requests]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda r: kmrules.decide(r).outcome, requests * 5))
    assert got == expected * 5
    assert got.count("granted") > 0 and got.count("refused") > 0


@pytest.mark.parametrize(
    ("job", "field"),
    [
        ({"gross_monthly_salary": float("nan")}, "case.job.gross_monthly_salary"),
        ({"gross_monthly_salary": float("inf")}, "case.job.gross_monthly_salary"),
        ({"gross_monthly_salary": "5100"}, "case.job.gross_monthly_salary"),
        ({"gross_monthly_salary": True}, "case.job.gross_monthly_salary"),
        ({"gross_monthly_salary": -1}, "case.job.gross_monthly_salary"),
        ({"position": "astronaut"}, "case.job.position"),
        ({"market_conform": "yes"}, "case.job.market_conform"),
        ({"salary": 5100}, "case.job.salary"),
    ],
)
def test_bad_input_is_rejected_before_the_engine(job: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestError) as info:
        kmrules.decide(_request(**job))
    assert any(p.location == field for p in info.value.problems), info.value.problems


def test_missing_application_date_is_an_error_not_undetermined() -> None:
    request = copy.deepcopy(EXAMPLE)
    del request["case"]["application_date"]
    with pytest.raises(RequestError, match=r"case\.application_date"):
        kmrules.decide(request)


def test_null_salary_is_undetermined_with_the_field_named() -> None:
    decision = kmrules.decide(_request(gross_monthly_salary=None))
    assert decision.outcome == "undetermined"
    assert decision.missing == ["job.gross_monthly_salary"]


def test_unknown_scheme_and_variant() -> None:
    with pytest.raises(UnknownSchemeError, match="knowledge_migrant"):
        kmrules.decide({**EXAMPLE, "scheme": "nope"})
    with pytest.raises(UnknownVariantError, match="baseline"):
        kmrules.decide({**EXAMPLE, "variant": "nope"})


def test_date_outside_the_rules_is_a_clear_error() -> None:
    request = copy.deepcopy(EXAMPLE)
    request["case"]["application_date"] = "2019-05-01"
    with pytest.raises(kmrules.errors.ParameterNotDefinedError, match="2019-05-01"):
        kmrules.decide(request)
