"""Invariant checks a policy team runs against its own variants (with hypothesis or plain pytest).

Each helper decides with the real engine and raises AssertionError with a message that names
the case, the variants and the criteria involved, so a failing property reads like a refusal.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from kmrules.decide import decide, get_rulebook
from kmrules.model import Decision

Direction = Literal["fewer", "more", "same"]


def _with(request: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(request)
    out.update(changes)
    return out


def _set_fact(request: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(request)
    node = out["case"]
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def _get_fact(request: dict[str, Any], path: str) -> Any:
    node: Any = request["case"]
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _failing(decision: Decision) -> list[str]:
    return [f.rule for f in decision.findings if f.result == "fail"]


def assert_monotone(
    request: dict[str, Any],
    fact: str = "job.gross_monthly_salary",
    increases: Sequence[float] = (0.01, 1, 100, 1000),
    *,
    rules_dir: str | Path | None = None,
) -> None:
    """More of `fact` (all else equal) never turns a grant into a refusal or an undetermined."""
    base_value = _get_fact(request, fact)
    if base_value is None:
        return
    before = decide(request, rules_dir=rules_dir, explain_more=False)
    if before.outcome != "granted":
        return
    for step in increases:
        after = decide(_set_fact(request, fact, base_value + step), rules_dir=rules_dir, explain_more=False)
        assert after.outcome == "granted", (
            f"raising {fact} from {base_value} by {step} turned a grant into {after.outcome} "
            f"(failing: {_failing(after)}) under variant {before.variant}"
        )


def assert_subset_of(
    request: dict[str, Any], *, variant: Any, baseline: Any = "baseline", rules_dir: str | Path | None = None
) -> None:
    """Whatever `variant` grants, `baseline` grants too (the variant only tightens)."""
    tightened = decide(_with(request, variant=variant), rules_dir=rules_dir, explain_more=False)
    if tightened.outcome != "granted":
        return
    base = decide(_with(request, variant=baseline), rules_dir=rules_dir, explain_more=False)
    assert base.outcome == "granted", (
        f"variant {tightened.variant} grants a case that {base.variant} decides {base.outcome} "
        f"(failing under {base.variant}: {_failing(base)})"
    )


def assert_deterministic(request: dict[str, Any], *, rules_dir: str | Path | None = None) -> None:
    """The same request gives the same decision (outcome, findings, receipt hash) every time."""
    first = decide(request, rules_dir=rules_dir).model_dump(mode="json")
    second = decide(copy.deepcopy(request), rules_dir=rules_dir).model_dump(mode="json")
    assert first == second, "two decisions of the same request differ"


def assert_order_stable(
    request: dict[str, Any], variants: Sequence[str], *, rules_dir: str | Path | None = None
) -> None:
    """Composing non-conflicting variants in any order gives the same outcome and findings."""
    forward = decide(_with(request, variant=list(variants)), rules_dir=rules_dir, explain_more=False)
    backward = decide(_with(request, variant=list(reversed(variants))), rules_dir=rules_dir, explain_more=False)
    assert forward.outcome == backward.outcome, (
        f"{forward.variant}: {forward.outcome}, {backward.variant}: {backward.outcome}"
    )
    assert [(f.rule, f.result, f.required) for f in forward.findings] == [
        (f.rule, f.result, f.required) for f in backward.findings
    ], f"findings differ between {forward.variant} and {backward.variant}"


def assert_explained(decision: Decision) -> None:
    """Every finding names its rule, its legal basis and an explanation; refusals say why."""
    for finding in decision.findings:
        assert finding.rule, "a finding without a rule id"
        assert finding.legal_basis, f"{finding.rule} has no legal basis"
        assert finding.explanation.strip(), f"{finding.rule} has no explanation"
    if decision.outcome == "refused":
        assert _failing(decision) or decision.quota, "a refusal without a failing criterion or quota"
    if decision.outcome == "undetermined":
        assert decision.missing, "undetermined without the missing inputs"


def grant_counts(
    requests: Iterable[dict[str, Any]], variants: Sequence[Any], *, rules_dir: str | Path | None = None
) -> dict[str, Counter[str]]:
    """Outcome counts per variant over a population (the oracle backend, for speed)."""
    book = get_rulebook(rules_dir)
    counts: dict[str, Counter[str]] = {}
    for request in requests:
        for variant in variants:
            decision = decide(_with(request, variant=variant), book=book, backend="oracle", explain_more=False)
            counts.setdefault(decision.variant, Counter())[decision.outcome] += 1
    return counts


def assert_direction(
    requests: Iterable[dict[str, Any]],
    *,
    variant: Any,
    expected: Direction,
    baseline: Any = "baseline",
    rules_dir: str | Path | None = None,
) -> dict[str, Counter[str]]:
    """Over a population, the variant moves the number of grants in the expected direction
    (the seed's "Gevolgen voor aantallen arbeidsmigranten"); returns the counts."""
    population = list(requests)
    counts = grant_counts(population, [baseline, variant], rules_dir=rules_dir)
    labels = list(counts)
    base, new = counts[labels[0]]["granted"], counts[labels[-1]]["granted"]
    ok = {"fewer": new <= base, "more": new >= base, "same": new == base}[expected]
    assert ok, f"expected {expected} grants under {labels[-1]} than {labels[0]}: {new} vs {base}"
    return counts
