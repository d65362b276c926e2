"""YAML reference cases (tests/cases/<scheme>/*.yaml): expectations taken from the public
sources cited in each case, run through both the durable_rules engine and the oracle."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

import kmrules
from kmrules.model import Decision

CASES_DIR = Path(__file__).parent / "cases"


def _load() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(CASES_DIR.glob("*/*.yaml")):
        for case in yaml.safe_load(path.read_text())["cases"]:
            out.append((f"{path.parent.name}/{path.stem}::{case['id']}", case))
    return out


CASES = _load()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _check(decision: Decision, expect: dict[str, Any]) -> None:
    by_rule = {f.rule: f for f in decision.findings}
    assert decision.outcome == expect["outcome"]
    assert sorted(decision.failing()) == sorted(expect.get("failing", []))
    for rule, required in expect.get("required", {}).items():
        assert by_rule[rule].required == required, rule
    for rule in expect.get("not_applicable", []):
        assert by_rule[rule].result == "not_applicable", rule
    for field in expect.get("missing", []):
        assert field in decision.missing, field
    for amount_id, value in expect.get("amounts", {}).items():
        assert decision.amounts[amount_id].value == _jsonable(value), amount_id


def test_there_are_enough_reference_cases() -> None:
    schemes = {cid.split("/")[0] for cid, _ in CASES}
    assert {"knowledge_migrant", "eu_blue_card"} <= schemes
    assert len(CASES) >= 40
    assert all(case.get("source") for _, case in CASES), "every case cites its source"


@pytest.mark.parametrize("backend", ["durable", "oracle"])
@pytest.mark.parametrize(("case_id", "case"), CASES, ids=[c for c, _ in CASES])
def test_reference_case(case_id: str, case: dict[str, Any], backend: str) -> None:
    decision = kmrules.decide(_jsonable(case["request"]), backend=backend)  # type: ignore[arg-type]
    _check(decision, case["expect"])
