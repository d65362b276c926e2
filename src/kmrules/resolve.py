"""Resolve the rulebook for one (scheme, variant stack, date): the rules a decision runs on.

Picks the criterion versions in force on the date, inlines predicates, fixes every
parameter value (with its reference and the variants that changed it), and hashes the
result for the receipt. Cached: resolving is pure.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from kmrules import conditions as cond
from kmrules.errors import Problem, RuleFileError
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

    @property
    def param_values(self) -> dict[str, Any]:
        return {name: p.value for name, p in self.params.items()}


def _in_force(valid_from: dt.date | None, valid_until: dt.date | None, on: dt.date) -> bool:
    return (valid_from is None or valid_from <= on) and (valid_until is None or on <= valid_until)


def resolve(book: Rulebook, scheme_id: str, stack: VariantStack, on: dt.date) -> ResolvedRules:
    """Resolve (cached per rulebook, scheme, stack and date)."""
    return _resolve_cached(_BookHandle(book), scheme_id, stack_key(stack), stack, on)


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
        )
        for s in specs
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

    structure = json.dumps(
        [scheme_id, [(c.id, repr(c.applies), repr(c.holds)) for c in criteria]], sort_keys=True
    )
    structure_key = hashlib.sha256(structure.encode()).hexdigest()[:24]
    full = json.dumps(
        [structure, sorted((n, str(p.value)) for n, p in params.items()), [repr(d) for d in scheme.derived], list(quotas)],
        sort_keys=True,
        default=str,
    )
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
    )
