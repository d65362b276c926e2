"""The entry point: a request in, an explained Decision out.

Pure given the rulebook: validate, resolve (scheme x variant x date), derive facts, run
the criteria on the chosen backend, and explain every finding with its legal basis.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from kmrules import __version__
from kmrules import conditions as cond
from kmrules.engine import ENGINE_NAME, DurableBackend, EngineMemo
from kmrules.factset import derive_facts, input_fields, params_behind
from kmrules.model import Amount, Decision, Finding, LegalBasis, Receipt
from kmrules.oracle import Result, evaluate_criteria
from kmrules.overlay import VariantStack, stack_for
from kmrules.request import RequestEnvelope, parse_request
from kmrules.resolve import ResolvedCriterion, ResolvedRules, resolve
from kmrules.rulebook import Rulebook, load_rulebook, type_context
from kmrules.rulefiles import CriterionSpec

Backend = Literal["durable", "oracle"]
_DURABLE = DurableBackend()


def rules_dir_from_env(rules_dir: str | Path | None = None) -> Path | None:
    """--rules DIR wins, then KMRULES_RULES_DIR, then the package's own rules/."""
    if rules_dir is not None:
        return Path(rules_dir)
    env = os.environ.get("KMRULES_RULES_DIR")
    return Path(env) if env else None


@lru_cache(maxsize=16)
def _cached_book(path: str | None) -> Rulebook:
    return load_rulebook(path)


def get_rulebook(rules_dir: str | Path | None = None) -> Rulebook:
    """The loaded rulebook for a directory (cached; loading validates everything)."""
    path = rules_dir_from_env(rules_dir)
    return _cached_book(str(path.resolve()) if path else None)


def decide(
    request: dict[str, Any],
    *,
    rules_dir: str | Path | None = None,
    backend: Backend = "durable",
    book: Rulebook | None = None,
    explain_more: bool = True,
) -> Decision:
    """Decide one request (the pinned interface); raises typed kmrules errors on bad input.

    On a refusal decided by a salary threshold, `explain_more` adds the counterfactuals:
    `amounts.salary_needed` and `counterfactuals.variants_that_grant`.
    """
    book = book or get_rulebook(rules_dir)
    return decide_prepared(book, prepare(book, request), backend, explain_more=explain_more)


@dataclass(frozen=True)
class Prepared:
    """A validated request with its rules resolved: what deciding (and the ledger) work from."""

    envelope: RequestEnvelope
    case_facts: dict[str, Any]
    on: dt.date
    stack: VariantStack
    rules: ResolvedRules


def prepare(book: Rulebook, request: dict[str, Any]) -> Prepared:
    """Validate the request and resolve its scheme x variant x date (typed errors on bad input)."""
    envelope, case_facts, on = parse_request(book, request)
    stack = stack_for(book, envelope.variant)
    return Prepared(envelope, case_facts, on, stack, resolve(book, envelope.scheme, stack, on))


def decide_prepared(
    book: Rulebook, prepared: Prepared, backend: Backend = "durable", *, explain_more: bool = True
) -> Decision:
    """Decide a prepared request; with `explain_more`, counterfactuals on threshold refusals."""
    memo: EngineMemo = {}  # the decision and its counterfactuals ask the engine about one case
    decision = decide_resolved(book, prepared.rules, prepared.case_facts, backend, explain_more=explain_more, memo=memo)
    if explain_more and "salary_needed" in decision.amounts:  # a refusal a threshold decided
        from kmrules.counterfactual import granting_variants

        variant = prepared.envelope.variant
        label = variant if isinstance(variant, str) else ""
        failing = [f.rule for f in decision.findings if f.result == "fail"]
        decision.counterfactuals["variants_that_grant"] = granting_variants(
            book, prepared.envelope.scheme, prepared.case_facts, label, memo, prepared.rules, failing
        )
    return decision


def fact_types(book: Rulebook, rules: ResolvedRules) -> dict[str, str]:
    """Types of every fact the scheme's rules may read (case fields and derived facts)."""
    key = (id(book), rules.scheme)
    found = _FACT_TYPES.get(key)
    if found is None or found[0] is not book:
        found = (book, dict(type_context(book, book.scheme(rules.scheme)).fact_types))
        _FACT_TYPES[key] = found
    return found[1]


_FACT_TYPES: dict[tuple[int, str], tuple[Rulebook, dict[str, str]]] = {}


def run_criteria(
    book: Rulebook,
    rules: ResolvedRules,
    facts: Mapping[str, Any],
    backend: Backend,
    memo: EngineMemo | None = None,
) -> dict[str, Result]:
    """Per-criterion results from the chosen backend (`memo`: see engine.EngineMemo)."""
    if backend == "oracle":
        return evaluate_criteria(rules.criteria, facts, rules.param_values)
    return _DURABLE.run(rules, facts, fact_types(book, rules), memo)


def decide_resolved(
    book: Rulebook,
    rules: ResolvedRules,
    case_facts: Mapping[str, Any],
    backend: Backend = "durable",
    *,
    explain_more: bool = True,
    memo: EngineMemo | None = None,
) -> Decision:
    """Decide a validated case under already-resolved rules."""
    facts, inputs = derive_facts(rules, case_facts)
    params = rules.param_values
    results = run_criteria(book, rules, facts, backend, memo)
    findings = [
        _finding(c, results[c.id], facts, params, inputs, _met_regardless(c, results[c.id], facts, params))
        for c in rules.criteria
    ]
    findings += [_dormant(spec, rules) for spec in rules.not_in_force]
    if any(f.result == "fail" for f in findings):
        outcome = "refused"
    elif any(f.result == "undetermined" for f in findings):
        outcome = "undetermined"
    else:
        outcome = "granted"
    missing = sorted({m for f in findings for m in f.missing})
    amounts = {a.spec.id: _amount(a.spec, a.applies, facts, params, inputs, rules) for a in rules.amounts}
    amounts = {k: v for k, v in amounts.items() if v is not None}
    decision = Decision(
        outcome=outcome,
        scheme=rules.scheme,
        variant=rules.stack.label,
        findings=findings,
        missing=missing,
        amounts=amounts,
        receipt=_receipt(rules),
    )
    if explain_more and outcome == "refused":
        from kmrules.counterfactual import salary_needed

        needed = salary_needed(book, rules, case_facts, decision, memo)
        if needed is not None:
            decision.amounts["salary_needed"] = needed
    return decision


def _display(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} = {_text(v)}" for k, v in value.items())
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "unknown"}[value]
    if isinstance(value, int | float):
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    return str(value)


def _pick(values: dict[str, Any]) -> Any:
    if not values:
        return None
    return next(iter(values.values())) if len(values) == 1 else values


def _met_regardless(
    crit: ResolvedCriterion, result: Result, facts: Mapping[str, Any], params: Mapping[str, Any]
) -> bool:
    """Undetermined only because its applicability is unknown, while its condition is met:
    whatever the missing facts are, this criterion passes or does not apply, so it cannot
    stand in the way of a grant (e.g. a salary above every age group's criterion)."""
    return (
        result == "undetermined"
        and cond.evaluate(crit.applies, facts, params) is None
        and cond.evaluate(crit.holds, facts, params) is True
    )


def _finding(
    crit: ResolvedCriterion,
    result: Result,
    facts: Mapping[str, Any],
    params: Mapping[str, Any],
    inputs: Mapping[str, set[str]],
    met_regardless: bool = False,
) -> Finding:
    if met_regardless:
        unknown = input_fields(cond.undecided_facts(crit.applies, facts, params), inputs, facts)
        found = _finding(crit, "pass", facts, params, inputs)
        found.explanation += (
            f" Met whether or not it applies (its applicability depends on: {', '.join(sorted(unknown))})."
        )
        return found
    observed = _pick({p: _display(facts.get(p)) for p in crit.observed_facts})
    required = _pick({p: _display(params[p]) for p in crit.required_params})
    missing: set[str] = set()
    if result == "undetermined":
        undecided = cond.undecided_facts(crit.applies, facts, params)
        if not undecided:
            undecided = cond.undecided_facts(crit.holds, facts, params)
        missing = input_fields(undecided, inputs, facts)
    template = {
        "pass": crit.explain_pass,
        "fail": crit.explain_fail,
        "not_applicable": crit.explain_not_applicable or "Does not apply to this case.",
        "undetermined": "Cannot be decided: missing {missing}.",
    }[result]
    values = {
        "observed": _text(observed),
        "required": _text(required),
        "title": crit.title,
        "missing": ", ".join(sorted(missing)),
    }
    # model_construct: every value here comes from validated rules and a validated case
    return Finding.model_construct(
        rule=crit.id,
        title=crit.title,
        version=crit.version,
        result=result,
        observed=observed,
        required=required,
        legal_basis=list(crit.basis),
        explanation=template.format_map(values),
        missing=sorted(missing),
    )


def _dormant(spec: CriterionSpec, rules: ResolvedRules) -> Finding:
    """A criterion of the scheme with no version in force on the date: shown, not applied."""
    span = f"from {spec.valid_from}" if spec.valid_from else f"until {spec.valid_until}"
    return Finding(
        rule=spec.id,
        title=spec.title,
        version=spec.version,
        result="not_applicable",
        legal_basis=[LegalBasis(**b.model_dump()) for b in spec.legal_basis],
        explanation=f"Not in force on {rules.on.isoformat()} (this criterion applies {span}).",
    )


def _amount(
    spec: Any,
    applies: cond.Condition,
    facts: Mapping[str, Any],
    params: Mapping[str, Any],
    inputs: Mapping[str, set[str]],
    rules: ResolvedRules,
) -> Amount | None:
    when = cond.evaluate(applies, facts, params)
    if when is False:
        return None
    missing: set[str] = input_fields(cond.undecided_facts(applies, facts, params), inputs, facts)
    value = facts.get(spec.fact) if when else None
    if when:
        missing |= {m for m in inputs.get(spec.fact, {spec.fact}) if facts.get(m) is None}
    used = {n: _display(p.value) for n, p in rules.params.items() if n in params_behind(spec.fact, rules)}
    return Amount(
        id=spec.id,
        title=spec.title,
        value=_display(value),
        unit=spec.unit,
        legal_basis=[LegalBasis(**b.model_dump()) for b in spec.legal_basis],
        parameters=used,
        missing=sorted(missing),
    )


def _receipt(rules: ResolvedRules) -> Receipt:
    return Receipt.model_construct(
        engine=ENGINE_NAME,
        kmrules_version=__version__,
        rules_hash=rules.rules_hash,
        variant=rules.stack.label,
        variants=rules.stack.ids,
        decision_date=rules.on,
        parameters=rules.receipt_parameters,
        rule_versions=rules.receipt_versions,
        ledger=None,
    )
