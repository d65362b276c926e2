"""The oracle: a plain-Python interpreter of the resolved criteria, small enough to trust.

The durable_rules backend (and later the population backend) must give exactly these
results on every valid case; the differential test holds them to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from kmrules.conditions import evaluate
from kmrules.resolve import ResolvedCriterion

Result = Literal["pass", "fail", "not_applicable", "undetermined"]


def criterion_result(crit: ResolvedCriterion, facts: Mapping[str, Any], params: Mapping[str, Any]) -> Result:
    """Kleene truth of applies/holds mapped to the four finding results."""
    applies = evaluate(crit.applies, facts, params)
    if applies is False:
        return "not_applicable"
    if applies is None:
        return "undetermined"
    holds = evaluate(crit.holds, facts, params)
    if holds is None:
        return "undetermined"
    return "pass" if holds else "fail"


def evaluate_criteria(
    criteria: tuple[ResolvedCriterion, ...], facts: Mapping[str, Any], params: Mapping[str, Any]
) -> dict[str, Result]:
    """Result per criterion id, in rule order."""
    return {c.id: criterion_result(c, facts, params) for c in criteria}
