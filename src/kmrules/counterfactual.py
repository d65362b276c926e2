"""What would change a refusal: the smallest passing salary, and the shipped variants that grant.

Generic over the rules: the salary candidates are the criterion values the resolved rules
compare the salary with, so a new salary criterion needs no code here.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from functools import lru_cache
from typing import Any

from kmrules import conditions as cond
from kmrules.engine import EngineMemo
from kmrules.factset import derive_facts, params_behind
from kmrules.model import Amount, Decision
from kmrules.oracle import Result
from kmrules.resolve import ResolvedCriterion, ResolvedRules
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


def _signed_comparisons(c: cond.Condition, positive: bool = True) -> list[tuple[cond.Compare, bool]]:
    """Every comparison in a condition tree, with whether it sits under an even number of
    negations (its truth counts as is) or an odd one (reversed)."""
    if isinstance(c, cond.Compare):
        return [(c, positive)]
    if isinstance(c, cond.All | cond.AnyOf):
        return [found for item in c.items for found in _signed_comparisons(item, positive)]
    if isinstance(c, cond.Not):
        return _signed_comparisons(c.item, not positive)
    return []


def _comparisons(c: cond.Condition) -> list[cond.Compare]:
    """Every comparison in a condition tree."""
    return [found for found, _ in _signed_comparisons(c)]


def _against_param(c: cond.Compare) -> bool:
    return c.fact == SALARY and isinstance(c.operand, cond.ParamRef)


def _param_value(c: cond.Compare, rules: ResolvedRules) -> float:
    assert isinstance(c.operand, cond.ParamRef)
    return float(rules.params[c.operand.name].value)


def _salary_thresholds(rules: ResolvedRules) -> list[float]:
    """Every value the salary is compared with, as the smallest salary that satisfies it."""
    out: set[float] = set()
    for crit in rules.criteria:
        for c in filter(_against_param, _comparisons(crit.holds)):
            value = _param_value(c, rules)
            out.add(value + 0.01 if c.op == "gt" else value)
    return sorted(out)


def _salary_read_from(rules: ResolvedRules) -> set[str]:
    """The salary and every derived fact built from it (in any number of steps)."""
    out = {SALARY}
    grew = True
    while grew:
        grew = False
        for derived in rules.derived:
            if derived.name not in out and any(a.get("fact") in out for a in derived.args):
                out.add(derived.name)
                grew = True
    return out


def _salary_criteria_values(
    crit: ResolvedCriterion, rules: ResolvedRules, salary_facts: set[str]
) -> list[float] | None:
    """The parameter values a criterion compares the salary with, when that is the only way it
    reads the salary (None when it also reads it in its applicability, against another fact or
    through a derived fact; `salary_facts`: see `_salary_read_from`). Such a criterion's
    result, as the salary rises, can only change at one of these values."""
    if salary_facts & set(cond.facts_of(crit.applies)) or (salary_facts - {SALARY}) & set(cond.facts_of(crit.holds)):
        return None
    reading = [c for c in _comparisons(crit.holds) if SALARY in cond.facts_of(c)]
    if not all(_against_param(c) for c in reading):
        return None
    return [_param_value(c, rules) for c in reading]


def _first_candidate(rules: ResolvedRules, failing: list[str], current: float) -> float:
    """No candidate below this can end every salary refusal: a failing criterion that reads the
    salary only against parameter values keeps its result from the current salary up to the
    next such value above it (and for good if there is none)."""
    by_id = {c.id: c for c in rules.criteria}
    salary_facts = _salary_read_from(rules)
    floor = -math.inf
    for rule in failing:
        values = _salary_criteria_values(by_id[rule], rules, salary_facts)
        if values is not None:
            floor = max(floor, min((v for v in values if v > current), default=math.inf))
    return floor


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
    floor = _first_candidate(rules, [f.rule for f in failing], current)
    for candidate in _salary_thresholds(rules):
        if candidate <= current or candidate < floor:
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


class _ByHash:
    """Resolved rules keyed by their content hash (criteria, parameter values, derivations)."""

    def __init__(self, rules: ResolvedRules) -> None:
        self.rules = rules

    def __hash__(self) -> int:
        return hash(self.rules.rules_hash)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByHash) and other.rules.rules_hash == self.rules.rules_hash


def no_easier_criteria(a: ResolvedRules, b: ResolvedRules) -> frozenset[str]:
    """Ids of the criteria that no case can meet more easily under `b` than under `a`: the
    same conditions, the same derivation (with the same parameter values) of every fact they
    read, the same value of every parameter their applicability compares with, and each
    parameter their holding condition compares with either the same or moved the strict way
    (`_stricter`): e.g. a salary criterion whose threshold `b` raises.

    For one case such a criterion applies under `b` exactly when it does under `a`, and its
    holding condition can only go from true to false, never back (it is monotone in each of
    those comparisons), so one that fails under `a` fails under `b`, and `b` cannot grant.
    Cached per pair of rule sets (it depends on the rules, not on the case)."""
    return _no_easier(_ByHash(a), _ByHash(b))


@lru_cache(maxsize=4096)
def _no_easier(a_key: _ByHash, b_key: _ByHash) -> frozenset[str]:
    a, b = a_key.rules, b_key.rules
    if a.scheme != b.scheme or a.derived != b.derived:
        return frozenset()
    theirs = {c.id: c for c in b.criteria}
    out: set[str] = set()
    for crit in a.criteria:
        other = theirs.get(crit.id)
        if other is None or (other.applies, other.holds) != (crit.applies, crit.holds):
            continue
        read = cond.facts_of(crit.applies) + cond.facts_of(crit.holds)
        fixed = set(cond.params_of(crit.applies)) | {n for fact in read for n in params_behind(fact, a)}
        compared = [
            (c.operand.name, c.op, positive)
            for c, positive in _signed_comparisons(crit.holds)
            if isinstance(c.operand, cond.ParamRef)
        ]
        fixed |= set(cond.params_of(crit.holds)) - {name for name, _, _ in compared}
        if not all(_same_value(n, a, b) for n in fixed):
            continue
        if all(_same_value(n, a, b) or _stricter(op, positive, n, a, b) for n, op, positive in compared):
            out.add(crit.id)
    return frozenset(out)


def _same_value(name: str, a: ResolvedRules, b: ResolvedRules) -> bool:
    return name in a.params and name in b.params and a.params[name].value == b.params[name].value


def _stricter(op: str, positive: bool, name: str, a: ResolvedRules, b: ResolvedRules) -> bool:
    """Whether `fact op param`, with the parameter's value of `b` instead of `a`'s, is true for
    no more facts (`positive`) or for no fewer (under a negation, the strict way is reversed).
    Only order comparisons move monotonically; a changed (in)equality or membership is not."""
    if op not in ("gt", "gte", "lt", "lte") or name not in a.params or name not in b.params:
        return False
    old, new = a.params[name].value, b.params[name].value
    try:
        raised = bool(new > old)
        lowered = bool(new < old)
    except TypeError:
        return False
    wants_higher = (op in ("gt", "gte")) == positive
    return raised if wants_higher else lowered


def granting_variants(
    book: Rulebook,
    scheme: str,
    case_facts: Mapping[str, Any],
    current: str,
    memo: EngineMemo | None = None,
    refused_under: ResolvedRules | None = None,
    failing: Collection[str] = (),
) -> list[str]:
    """Ids of the shipped variants and packages under which the same (validated) case is granted.

    Pass the memo of the decision itself: a variant whose rules read the same as the refusing
    ones for this case (it changes nothing this case touches) is then answered without a run.
    Pass the refusing rules and the ids of the criteria that failed there: a variant under
    which one of them is no easier to meet (`no_easier_criteria`) refuses too, and is not run."""
    from kmrules.overlay import stack_for
    from kmrules.resolve import resolve

    on = case_facts["application_date"]
    used = set(resolve(book, scheme, stack_for(book, "baseline"), on).params)
    touching = {vid for vid, v in book.variants.items() if _touches(v, scheme, used)}
    touching |= {pid for pid, p in book.packages.items() if touching & set(p.package.variants)}
    failed = set(failing)
    out = []
    for variant_id in [*sorted(book.variants), *sorted(book.packages)]:
        if variant_id == current or variant_id not in touching:
            continue
        rules = resolve(book, scheme, stack_for(book, variant_id), on)
        if refused_under is not None and failed & no_easier_criteria(refused_under, rules):
            continue
        results = results_of(book, rules, case_facts, memo)
        if all(r in ("pass", "not_applicable") for r in results.values()):
            out.append(variant_id)
    return out
