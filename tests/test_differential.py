"""The durable_rules engine and the plain-Python oracle agree on every valid case."""

from __future__ import annotations

from typing import Any

from hypothesis import given

import kmrules
from kmrules.testing import all_scheme_requests


@given(all_scheme_requests())
def test_engine_agrees_with_oracle(request: dict[str, Any]) -> None:
    engine = kmrules.decide(request, backend="durable")
    oracle = kmrules.decide(request, backend="oracle")
    assert engine.outcome == oracle.outcome
    assert [(f.rule, f.result) for f in engine.findings] == [(f.rule, f.result) for f in oracle.findings]
    assert engine.missing == oracle.missing


@given(all_scheme_requests(complete=True))
def test_complete_cases_are_never_undetermined(request: dict[str, Any]) -> None:
    decision = kmrules.decide(request)
    assert decision.outcome in ("granted", "refused")
    assert all(f.result != "undetermined" for f in decision.findings)
