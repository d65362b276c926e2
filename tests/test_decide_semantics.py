"""Three-valued outcomes: a missing fact only makes a case undetermined if it could change it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kmrules

EXAMPLE = json.loads((Path(__file__).parent.parent / "examples" / "knowledge_migrant_2023.json").read_text())


def _without_birth_date(salary: float) -> dict[str, Any]:
    request = copy.deepcopy(EXAMPLE)
    del request["case"]["applicant"]["birth_date"]
    request["case"]["job"]["gross_monthly_salary"] = salary
    return request


def test_salary_above_every_age_criterion_is_granted_without_a_birth_date() -> None:
    decision = kmrules.decide(_without_birth_date(5100))  # 2023: 5,008 is the highest age criterion
    assert decision.outcome == "granted"
    assert decision.missing == []
    for rule in ("KM-SALARY-UNDER30", "KM-SALARY-30PLUS"):
        finding = next(f for f in decision.findings if f.rule == rule)
        assert finding.result == "pass"
        assert "applicant.birth_date" in finding.explanation


def test_salary_between_age_criteria_stays_undetermined_without_a_birth_date() -> None:
    decision = kmrules.decide(_without_birth_date(4000))  # passes under-30 (3,672), fails 30+ (5,008)
    assert decision.outcome == "undetermined"
    assert decision.missing == ["applicant.birth_date"]
    assert next(f for f in decision.findings if f.rule == "KM-SALARY-30PLUS").result == "undetermined"


def test_both_backends_agree_on_met_regardless() -> None:
    request = _without_birth_date(5100)
    engine = kmrules.decide(request)
    oracle = kmrules.decide(request, backend="oracle")
    assert [(f.rule, f.result) for f in engine.findings] == [(f.rule, f.result) for f in oracle.findings]
