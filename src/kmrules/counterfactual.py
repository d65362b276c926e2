"""What would change a refusal: the smallest passing salary, and the shipped variants that grant.

Generic over the rules: the salary candidates are the criterion values the resolved rules
compare the salary with, so a new salary criterion needs no code here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kmrules import conditions as cond
from kmrules.engine import EngineMemo
from kmrules.factset import derive_facts
from kmrules.model import Amount, Decision
from kmrules.oracle import Result
from kmrules.resolve import ResolvedRules
from kmrules.rulebook import Rulebook
from kmrules.rulefiles import VariantFile

SALARY = "job.gross_monthly_salary"


def results_of(
    book: Rulebook, rules: ResolvedRules, case_facts: Mapping[str, Any], memo: EngineMemo | None = None
) -> dict[str, Result]:
    """Criterion results only, from the engine: what a counterfactual needs, without explanations."""
    from kmrules.decide import run_criteria

    facts, _ = derive_facts(rules, case_facts)
    return run_criteria(book, rules, facts, "durable", memo)


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
    book: Rulebook,
    rules: ResolvedRules,
    case_facts: Mapping[str, Any],
    decision: Decision,
    memo: EngineMemo | None = None,
) -> Amount | None:
    """The smallest salary at which no salary criterion fails, all else equal (None if none fails)."""
    salary_rules = {c.id for c in rules.criteria if SALARY in c.observed_facts}
    failing = [f for f in decision.findings if f.result == "fail" and f.rule in salary_rules]
    current = case_facts.get(SALARY)
    if not failing or current is None:
        return None
    for candidate in _salary_thresholds(rules):
        if candidate <= current:
            continue
        trial = results_of(book, rules, {**case_facts, SALARY: candidate}, memo)
        if not any(trial[rule] == "fail" for rule in salary_rules):
            return Amount(
                id="salary_needed",
                title="Smallest gross monthly salary that meets the salary criterion under this variant",
                value=int(candidate) if float(candidate).is_integer() else candidate,
                unit="EUR/month",
                legal_basis=[b for f in failing for b in f.legal_basis],
                parameters={n: p.value for n, p in rules.params.items() if "salary" in n},
            )
    return None


def _touches(variant: VariantFile, scheme: str, used_params: set[str]) -> bool:
    """Whether a variant can change a decision of `scheme`: it overlays its criteria or changes a
    parameter its rules read (variants that change nothing the scheme reads decide as the baseline)."""
    return scheme in variant.schemes or bool(used_params & set(variant.parameters))


def granting_variants(
    book: Rulebook, scheme: str, case_facts: Mapping[str, Any], current: str, memo: EngineMemo | None = None
) -> list[str]:
    """Ids of the shipped variants and packages under which the same (validated) case is granted.

    Pass the memo of the decision itself: a variant whose rules read the same as the refusing
    ones for this case (it changes nothing this case touches) is then answered without a run."""
    from kmrules.overlay import stack_for
    from kmrules.resolve import resolve

    on = case_facts["application_date"]
    used = set(resolve(book, scheme, stack_for(book, "baseline"), on).params)
    touching = {vid for vid, v in book.variants.items() if _touches(v, scheme, used)}
    touching |= {pid for pid, p in book.packages.items() if touching & set(p.package.variants)}
    out = []
    for variant_id in [*sorted(book.variants), *sorted(book.packages)]:
        if variant_id == current or variant_id not in touching:
            continue
        rules = resolve(book, scheme, stack_for(book, variant_id), on)
        results = results_of(book, rules, case_facts, memo)
        if all(r in ("pass", "not_applicable") for r in results.values()):
            out.append(variant_id)
    return out
