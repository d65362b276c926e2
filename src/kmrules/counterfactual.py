"""What would change a refusal: the smallest passing salary, and the shipped variants that grant.

Generic over the rules: the salary candidates are the criterion values the resolved rules
compare the salary with, so a new salary criterion needs no code here.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from kmrules import conditions as cond
from kmrules.model import Amount, Decision
from kmrules.resolve import ResolvedRules
from kmrules.rulebook import Rulebook

SALARY = "job.gross_monthly_salary"


def _salary_thresholds(rules: ResolvedRules) -> list[float]:
    """Every value the salary is compared with, as the smallest salary that satisfies it."""
    out: set[float] = set()

    def walk(c: cond.Condition) -> None:
        if isinstance(c, cond.Compare) and c.fact == SALARY and isinstance(c.operand, cond.ParamRef):
            value = float(rules.params[c.operand.name].value)
            out.add(value + 0.01 if c.op == "gt" else value)
        elif isinstance(c, cond.All | cond.AnyOf):
            for item in c.items:
                walk(item)
        elif isinstance(c, cond.Not):
            walk(c.item)

    for crit in rules.criteria:
        walk(crit.holds)
    return sorted(out)


def salary_needed(
    book: Rulebook, rules: ResolvedRules, case_facts: Mapping[str, Any], decision: Decision
) -> Amount | None:
    """The smallest salary at which no salary criterion fails, all else equal (None if none fails)."""
    from kmrules.decide import decide_resolved

    salary_rules = {c.id for c in rules.criteria if SALARY in c.observed_facts}
    failing = [f for f in decision.findings if f.result == "fail" and f.rule in salary_rules]
    current = case_facts.get(SALARY)
    if not failing or current is None:
        return None
    for candidate in _salary_thresholds(rules):
        if candidate <= current:
            continue
        trial = decide_resolved(book, rules, {**case_facts, SALARY: candidate}, backend="oracle", explain_more=False)
        if not any(f.result == "fail" and f.rule in salary_rules for f in trial.findings):
            return Amount(
                id="salary_needed",
                title="Smallest gross monthly salary that meets the salary criterion under this variant",
                value=int(candidate) if float(candidate).is_integer() else candidate,
                unit="EUR/month",
                legal_basis=[b for f in failing for b in f.legal_basis],
                parameters={n: p.value for n, p in rules.params.items() if "salary" in n},
            )
    return None


def granting_variants(book: Rulebook, request: Mapping[str, Any], current: str) -> list[str]:
    """Ids of the shipped variants and packages under which the same case is granted."""
    from kmrules.decide import decide

    out = []
    for variant_id in [*sorted(book.variants), *sorted(book.packages)]:
        if variant_id == current:
            continue
        trial = copy.deepcopy(dict(request))
        trial["variant"] = variant_id
        if decide(trial, book=book, backend="oracle", explain_more=False).outcome == "granted":
            out.append(variant_id)
    return out
