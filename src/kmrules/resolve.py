"""Resolve the rulebook for one (scheme, variant stack, date): the rules a decision runs on.

Picks the criterion versions in force on the date, inlines predicates, fixes every
parameter value (with its reference and the variants that changed it), and hashes the
result for the receipt. Cached: resolving is pure.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from kmrules import conditions as cond
from kmrules.errors import ParameterNotDefinedError, Problem, RuleFileError
from kmrules.model import LegalBasis, ParameterUsed, RuleVersionUsed
from kmrules.overlay import ResolvedParam, VariantStack, overlay_criteria, resolve_param, stack_key
from kmrules.rulebook import Rulebook, type_context
from kmrules.rulefiles import AmountSpec, CriterionSpec, DerivedSpec, Reference


@dataclass(frozen=True)
class ResolvedCriterion:
    """One criterion in the version in force on the decision date, predicates inlined."""

    id: str
    title: str
    version: str | None
    valid_from: dt.date | None
    valid_until: dt.date | None
    legal_basis: tuple[Reference, ...]
    applies: cond.Condition
    holds: cond.Condition
    explain_pass: str
    explain_fail: str
    explain_not_applicable: str | None
    observed_facts: tuple[str, ...]
    required_params: tuple[str, ...]
    basis: tuple[LegalBasis, ...]


@dataclass(frozen=True)
class ResolvedAmount:
    """An amount to report, with the condition under which it is reported."""

    spec: AmountSpec
    applies: cond.Condition


@dataclass(frozen=True)
class ResolvedRules:
    """Everything one decision needs, fixed for a scheme, a variant stack and a date."""

    scheme: str
    stack: VariantStack
    on: dt.date
    criteria: tuple[ResolvedCriterion, ...]
    derived: tuple[DerivedSpec, ...]
    amounts: tuple[ResolvedAmount, ...]
    params: dict[str, ResolvedParam]
    quotas: tuple[dict[str, Any], ...]
    not_in_force: tuple[CriterionSpec, ...]
    structure_key: str
    rules_hash: str
    overlaid_by: tuple[str, ...]
    receipt_parameters: dict[str, ParameterUsed]
    receipt_versions: dict[str, RuleVersionUsed]

    @property
    def param_values(self) -> dict[str, Any]:
        return {name: p.value for name, p in self.params.items()}


def _in_force(valid_from: dt.date | None, valid_until: dt.date | None, on: dt.date) -> bool:
    return (valid_from is None or valid_from <= on) and (valid_until is None or on <= valid_until)


def resolve(book: Rulebook, scheme_id: str, stack: VariantStack, on: dt.date) -> ResolvedRules:
    """Resolve for a date; cached per interval between change dates, so two dates with the
    same parameter values and criterion versions share one resolution (and one compiled
    engine ruleset)."""
    return _resolve_on(_BookHandle(book), scheme_id, stack_key(stack), stack, on)


@lru_cache(maxsize=8192)
def _resolve_on(handle: _BookHandle, scheme_id: str, key: str, stack: VariantStack, on: dt.date) -> ResolvedRules:
    """The interval's resolution, dated `on` (a day's copy is cached too: counterfactuals
    resolve every shipped variant for the same day)."""
    bounds = _boundaries(handle, scheme_id, key, stack)
    index = bisect.bisect_right(bounds, on) - 1
    start = bounds[index] if index >= 0 else dt.date.min
    try:
        resolved = _resolve_cached(handle, scheme_id, key, stack, start)
    except ParameterNotDefinedError as exc:
        raise ParameterNotDefinedError(exc.name, on.isoformat(), str(exc).split(": ", 1)[-1]) from exc
    return dataclasses.replace(resolved, on=on)


@lru_cache(maxsize=1024)
def _boundaries(handle: _BookHandle, scheme_id: str, key: str, stack: VariantStack) -> list[dt.date]:
    """Every date on which a parameter value or a criterion version may change."""
    book = handle.book
    days: set[dt.date] = set()
    for spec in book.parameters.values():
        for value in spec.values:
            days.add(value.valid_from)
            if value.until is not None:
                days.add(value.until + dt.timedelta(days=1))
    for variant in stack.variants:
        for override in variant.parameters.values():
            for value in override.values or []:
                days.add(value.valid_from)
                if value.until is not None:
                    days.add(value.until + dt.timedelta(days=1))
    specs, _, _ = overlay_criteria(book, stack, scheme_id)
    for crit in specs:
        if crit.valid_from is not None:
            days.add(crit.valid_from)
        if crit.valid_until is not None:
            days.add(crit.valid_until + dt.timedelta(days=1))
    return sorted(days)


class _BookHandle:
    """Hashes a rulebook by identity so lru_cache can key on it."""

    def __init__(self, book: Rulebook) -> None:
        self.book = book

    def __hash__(self) -> int:
        return id(self.book)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _BookHandle) and other.book is self.book


@lru_cache(maxsize=4096)
def _resolve_cached(handle: _BookHandle, scheme_id: str, key: str, stack: VariantStack, on: dt.date) -> ResolvedRules:
    book = handle.book
    scheme = book.scheme(scheme_id)
    specs, predicate_data, origins = overlay_criteria(book, stack, scheme_id)
    problems: list[Problem] = []
    ctx = type_context(book, scheme, predicate_data)
    predicates = {n: cond.parse(b, f"predicate {n}", ctx, problems) for n, b in predicate_data.items()}

    def build(data: dict[str, Any] | None, where: str) -> cond.Condition:
        if data is None:
            return cond.TRUE
        return cond.inline(cond.parse(data, where, ctx, problems), predicates)

    criteria = tuple(
        ResolvedCriterion(
            id=s.id,
            title=s.title,
            version=s.version,
            valid_from=s.valid_from,
            valid_until=s.valid_until,
            legal_basis=tuple(s.legal_basis),
            applies=build(s.applies_when, s.id),
            holds=build(s.holds_when, s.id),
            explain_pass=s.explain_pass,
            explain_fail=s.explain_fail,
            explain_not_applicable=s.explain_not_applicable,
            observed_facts=tuple(cond.facts_of(holds)),
            required_params=tuple(cond.params_of(holds)),
            basis=tuple(LegalBasis(**b.model_dump()) for b in s.legal_basis),
        )
        for s in specs
        for holds in [build(s.holds_when, s.id)]
        if _in_force(s.valid_from, s.valid_until, on)
    )
    in_force_ids = {c.id for c in criteria}
    dormant: dict[str, CriterionSpec] = {}
    for spec in specs:
        if spec.id not in in_force_ids:
            dormant.setdefault(spec.id, spec)
    amounts = tuple(ResolvedAmount(a, build(a.applies_when, a.id)) for a in scheme.amounts)
    if problems:  # unreachable after load-time checks, but never decide on a broken tree
        raise RuleFileError(problems)

    names: list[str] = []
    for crit in criteria:
        names += cond.params_of(crit.applies) + cond.params_of(crit.holds)
    for amount in amounts:
        names += cond.params_of(amount.applies)
    for derived in scheme.derived:
        names += [a["param"] for a in derived.args if "param" in a]
    params = {n: resolve_param(book, stack, n, on) for n in dict.fromkeys(names)}
    quotas = tuple(q for v in stack.variants for q in v.quotas if q.get("scheme") == scheme_id)

    structure = json.dumps([scheme_id, [(c.id, repr(c.applies), repr(c.holds)) for c in criteria]], sort_keys=True)
    structure_key = hashlib.sha256(structure.encode()).hexdigest()[:24]
    full = json.dumps(
        [
            structure,
            sorted((n, str(p.value)) for n, p in params.items()),
            [repr(d) for d in scheme.derived],
            list(quotas),
        ],
        sort_keys=True,
        default=str,
    )
    receipt_parameters = {
        n: ParameterUsed(
            value=p.value.isoformat() if isinstance(p.value, dt.date) else p.value,
            unit=p.unit,
            valid_from=p.valid_from,
            valid_until=p.valid_until,
            references=list(p.references),
            changed_by=list(p.changed_by),
        )
        for n, p in params.items()
    }
    receipt_versions = {
        c.id: RuleVersionUsed(
            version=c.version,
            valid_from=c.valid_from,
            valid_until=c.valid_until,
            reason="the only version"
            if c.valid_from is None and c.valid_until is None
            else "the version in force on the application date",
        )
        for c in criteria
    }
    for spec in dormant.values():
        receipt_versions[spec.id] = RuleVersionUsed(reason="no version in force on the application date")
    return ResolvedRules(
        scheme=scheme_id,
        stack=stack,
        on=on,
        criteria=criteria,
        derived=tuple(scheme.derived),
        amounts=amounts,
        params=params,
        quotas=quotas,
        not_in_force=tuple(dormant.values()),
        structure_key=structure_key,
        rules_hash=hashlib.sha256(full.encode()).hexdigest(),
        overlaid_by=tuple(origins),
        receipt_parameters=receipt_parameters,
        receipt_versions=receipt_versions,
    )
