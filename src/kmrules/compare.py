"""One case under several variants: each outcome, and the criteria whose result differs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from kmrules.decide import decide, get_rulebook
from kmrules.errors import Problem, RequestError
from kmrules.model import Decision

MAX_VARIANTS = 20


class Difference(BaseModel):
    """A criterion (or the outcome) whose result is not the same under every variant."""

    model_config = ConfigDict(extra="forbid")

    rule: str
    results: dict[str, str | None] = Field(
        description="variant -> result; null where the variant has no such criterion"
    )
    required: dict[str, Any] = Field(default_factory=dict)


class Comparison(BaseModel):
    """The pinned comparison: one decision per variant, in order, and the differences."""

    model_config = ConfigDict(extra="forbid")

    scheme: str
    variants: list[str]
    results: list[Decision]
    outcomes: dict[str, str]
    differences: list[Difference]


def compare(request: dict[str, Any], variants: list[Any], *, rules_dir: str | Path | None = None) -> Comparison:
    """Decide `request` under each variant (id, list of ids, or inline package) and diff them."""
    if not variants:
        raise RequestError([Problem("variants", "give at least one variant")])
    if len(variants) > MAX_VARIANTS:
        raise RequestError([Problem("variants", f"at most {MAX_VARIANTS} variants per comparison")])
    book = get_rulebook(rules_dir)
    results: list[Decision] = []
    for variant in variants:
        trial = copy.deepcopy(request)
        trial["variant"] = variant
        results.append(decide(trial, book=book))
    labels = [d.variant for d in results]
    return Comparison(
        scheme=results[0].scheme,
        variants=labels,
        results=results,
        outcomes={d.variant: d.outcome for d in results},
        differences=_differences(results),
    )


def _differences(results: list[Decision]) -> list[Difference]:
    out: list[Difference] = []
    if len({d.outcome for d in results}) > 1:
        out.append(Difference(rule="outcome", results={d.variant: d.outcome for d in results}))
    rules: list[str] = []
    for decision in results:
        rules += [f.rule for f in decision.findings if f.rule not in rules]
    for rule in rules:
        by_variant = {d.variant: next((f for f in d.findings if f.rule == rule), None) for d in results}
        result_map = {v: (f.result if f else None) for v, f in by_variant.items()}
        required = {v: f.required for v, f in by_variant.items() if f is not None and f.required is not None}
        if len(set(result_map.values())) > 1 or len({repr(r) for r in required.values()}) > 1:
            out.append(Difference(rule=rule, results=result_map, required=required))
    return out
