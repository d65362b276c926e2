"""Variants and policy packages: how an overlay changes parameters and criteria.

A request names a variant id, a package (a list of ids, or a package file's id), or an
inline what-if package `{"base": [...], "parameters": {...}}`. All become a VariantStack,
applied in order over the baseline. Two variants that set one parameter differently
conflict unless the package says its order wins.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kmrules.errors import (
    ParameterNotDefinedError,
    Problem,
    RequestError,
    UnknownVariantError,
    VariantConflictError,
)
from kmrules.rulefiles import CriterionSpec, ParamOverride, ParamSpec, ParamValue, VariantFile

if TYPE_CHECKING:
    from kmrules.rulebook import Rulebook


@dataclass(frozen=True, eq=False)
class VariantStack:
    """The variants of one request, in order, plus inline what-if parameter values."""

    label: str
    variants: tuple[VariantFile, ...]
    order_wins: bool = False
    inline: tuple[tuple[str, Any], ...] = ()
    key: str = field(default="", init=False)

    def __post_init__(self) -> None:
        key = json.dumps(
            [[v.variant.id for v in self.variants], self.order_wins, [[k, str(v)] for k, v in self.inline]]
        )
        object.__setattr__(self, "key", key)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VariantStack) and self.key == other.key

    @property
    def ids(self) -> list[str]:
        return [v.variant.id for v in self.variants]

    @property
    def is_what_if(self) -> bool:
        """Inline parameter values are hypothetical: they never take a real quota place."""
        return bool(self.inline)


@dataclass(frozen=True)
class ResolvedParam:
    """A parameter's value on a date, with where it came from."""

    name: str
    value: Any
    unit: str | None
    valid_from: dt.date | None
    valid_until: dt.date | None
    references: tuple[str, ...]
    changed_by: tuple[str, ...] = ()


@dataclass
class _Overrides:
    by_param: dict[str, list[tuple[str, ParamOverride]]] = field(default_factory=dict)


def stack_for(book: Rulebook, spec: Any) -> VariantStack:
    """Normalise a request's `variant` (id, list of ids, or inline package) into a VariantStack;
    VariantConflictError when two of its variants set a parameter differently without an order."""
    if isinstance(spec, str) and (known := book.named_stacks.get(spec)) is not None:
        return known
    stack = _build(book, spec)
    check_conflicts(stack)
    if isinstance(spec, str):
        book.named_stacks[spec] = stack
    return stack


def _build(book: Rulebook, spec: Any) -> VariantStack:
    known = ["baseline", *sorted(book.variants), *sorted(book.packages)]
    if spec is None or spec == "baseline":
        return VariantStack("baseline", ())
    if isinstance(spec, str):
        if spec in book.packages:
            pkg = book.packages[spec].package
            inner = _build(book, pkg.variants)
            return VariantStack(spec, inner.variants, pkg.order_wins)
        if spec not in book.variants:
            raise UnknownVariantError(spec, known)
        return VariantStack(spec, (book.variants[spec],))
    if isinstance(spec, list) and all(isinstance(s, str) for s in spec):
        parts = [_build(book, s) for s in spec]
        variants = tuple(v for p in parts for v in p.variants)
        return VariantStack("+".join(spec) if spec else "baseline", variants, any(p.order_wins for p in parts))
    if isinstance(spec, dict) and set(spec) <= {"base", "parameters", "order_wins"}:
        raw_base = spec.get("base", [])
        if not (
            isinstance(raw_base, str) or (isinstance(raw_base, list) and all(isinstance(b, str) for b in raw_base))
        ):
            raise RequestError([Problem("variant.base", "must be a variant id or a list of variant ids")])
        if not isinstance(spec.get("order_wins", False), bool):
            raise RequestError([Problem("variant.order_wins", "must be true or false")])
        base = _build(book, raw_base)
        params = spec.get("parameters", {})
        if not isinstance(params, dict):
            raise RequestError([Problem("variant.parameters", "must be a mapping of parameter name to value")])
        problems = []
        for name, value in params.items():
            pspec = book.parameters.get(name)
            if pspec is None:
                problems.append(Problem(f"variant.parameters.{name}", "unknown parameter"))
            elif not _value_fits(pspec, value):
                problems.append(Problem(f"variant.parameters.{name}", f"must be of type {pspec.type}"))
        if problems:
            raise RequestError(problems)
        order_wins = bool(spec.get("order_wins", base.order_wins))
        label = base.label + "+what-if(" + ",".join(f"{k}={v}" for k, v in sorted(params.items())) + ")"
        return VariantStack(label, base.variants, order_wins, tuple(sorted(params.items())))
    raise RequestError(
        [Problem("variant", "must be a variant id, a list of ids, or {'base': [...], 'parameters': {...}}")]
    )


def _value_fits(spec: ParamSpec, value: Any) -> bool:
    if spec.type == "number":
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and value == value
            and abs(value) != float("inf")
        )
    if spec.type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if spec.type == "bool":
        return isinstance(value, bool)
    if spec.type == "date":
        return isinstance(value, dt.date | str)
    return isinstance(value, str)


def check_conflicts(stack: VariantStack) -> None:
    """Two variants setting one parameter differently is an error unless the order wins."""
    if stack.order_wins:
        return
    seen: dict[str, tuple[str, ParamOverride]] = {}
    for variant in stack.variants:
        for name, override in variant.parameters.items():
            if name in seen and seen[name][1].model_dump(exclude={"reference"}) != override.model_dump(
                exclude={"reference"}
            ):
                raise VariantConflictError(
                    f"variants {seen[name][0]!r} and {variant.variant.id!r} both set parameter {name!r} differently; "
                    "state `order_wins: true` in the package to let the later one win"
                )
            seen[name] = (variant.variant.id, override)


def base_value(spec: ParamSpec, name: str, on: dt.date) -> tuple[ParamValue, dt.date | None]:
    """The baseline value in force on a date, and the last day it is in force."""
    ordered = sorted(spec.values, key=lambda v: v.valid_from)
    for i, value in enumerate(ordered):
        nxt = ordered[i + 1].valid_from if i + 1 < len(ordered) else None
        end = value.until or (nxt - dt.timedelta(days=1) if nxt else None)
        if value.valid_from <= on and (end is None or on <= end):
            return value, end
    raise ParameterNotDefinedError(
        name, on.isoformat(), f"values cover {ordered[0].valid_from} to {ordered[-1].until or 'open end'}"
    )


def resolve_param(
    book: Rulebook, stack: VariantStack, name: str, on: dt.date, _seen: tuple[str, ...] = ()
) -> ResolvedParam:
    """A parameter's value on `on` under the stack: baseline, then each override in order."""
    if name in _seen:
        raise VariantConflictError("same_as cycle: " + " -> ".join((*_seen, name)))
    spec = book.parameters[name]
    value, end = base_value(spec, name, on)
    current: Any = value.value
    refs = [value.reference]
    changed: list[str] = []
    start: dt.date | None = value.valid_from
    for variant in stack.variants:
        override = variant.parameters.get(name)
        if override is None:
            continue
        new = _apply(book, stack, override, current, name, on, (*_seen, name))
        if new is not _UNCHANGED:
            current = new
            refs.append(override.reference)
            changed.append(variant.variant.id)
    inline = dict(stack.inline)
    if name in inline:
        current = inline[name]
        if spec.type == "date" and isinstance(current, str):
            current = dt.date.fromisoformat(current)
        refs.append("what-if value given in the request")
        changed.append("what-if")
    return ResolvedParam(name, current, spec.unit, start, end, tuple(refs), tuple(changed))


_UNCHANGED = object()


def _apply(
    book: Rulebook, stack: VariantStack, o: ParamOverride, current: Any, name: str, on: dt.date, seen: tuple[str, ...]
) -> Any:
    if o.set is not None:
        return o.set
    if o.values is not None:
        for value in o.values:
            if value.valid_from <= on and (value.until is None or on <= value.until):
                return value.value
        return _UNCHANGED
    if o.same_as is not None:
        return resolve_param(book, stack, o.same_as, on, seen).value
    number = float(current)
    result = number * o.scale if o.scale is not None else number + (o.add or 0.0)
    digits = o.round if o.round is not None else 0
    rounded = round(result, digits)
    return int(rounded) if digits <= 0 else rounded


def overlay_criteria(
    book: Rulebook, stack: VariantStack, scheme_id: str
) -> tuple[list[CriterionSpec], dict[str, Any], list[str]]:
    """The scheme's criteria (all versions) and predicates after every variant's overlay."""
    scheme = book.scheme(scheme_id)
    criteria = list(scheme.criteria)
    predicates = dict(scheme.predicates)
    origins: list[str] = []
    for variant in stack.variants:
        overlay = variant.schemes.get(scheme_id)
        if overlay is None:
            continue
        origins.append(variant.variant.id)
        drop = set(overlay.remove) | {c.id for c in overlay.replace}
        criteria = [c for c in criteria if c.id not in drop]
        criteria += list(overlay.replace) + list(overlay.add)
        predicates.update(overlay.predicates)
    return criteria, predicates, origins


def check_variants(book: Rulebook) -> list[Problem]:
    """Each variant refers to real parameters, schemes and criteria; each package to real variants."""
    from kmrules.rulebook import check_criteria

    problems: list[Problem] = []
    for vid, variant in book.variants.items():
        source = book.sources["variant:" + vid]
        for name, override in variant.parameters.items():
            if name not in book.parameters:
                problems.append(Problem(f"{source}: parameters.{name}", "dangling reference: no such parameter"))
            elif override.same_as is not None and override.same_as not in book.parameters:
                problems.append(
                    Problem(f"{source}: parameters.{name}", f"same_as names no parameter {override.same_as!r}")
                )
        for scheme_id, overlay in variant.schemes.items():
            if scheme_id not in book.schemes:
                problems.append(Problem(f"{source}: schemes.{scheme_id}", "dangling reference: no such scheme"))
                continue
            existing = {c.id for c in book.schemes[scheme_id].criteria}
            for crit_id in overlay.remove + [c.id for c in overlay.replace]:
                if crit_id not in existing:
                    problems.append(
                        Problem(
                            f"{source}: schemes.{scheme_id}",
                            f"dangling reference: no criterion {crit_id!r} to remove or replace",
                        )
                    )
            for crit in overlay.add:
                if crit.id in existing:
                    problems.append(
                        Problem(f"{source}: schemes.{scheme_id}", f"criterion {crit.id!r} exists; use replace")
                    )
            stack = VariantStack(vid, (variant,))
            criteria, predicates, _ = overlay_criteria(book, stack, scheme_id)
            problems += check_criteria(book, book.schemes[scheme_id], criteria, predicates, source)
        problems += _check_quotas(variant, source)
    for pid, pkg in book.packages.items():
        source = book.sources["package:" + pid]
        for vid in pkg.package.variants:
            if vid not in book.variants:
                problems.append(Problem(f"{source}: package.variants", f"dangling reference: no variant {vid!r}"))
        if not problems:
            try:
                stack_for(book, pid)
            except VariantConflictError as exc:
                problems.append(Problem(source, str(exc)))
    return problems


def _check_quotas(variant: VariantFile, source: str) -> list[Problem]:
    """Quota definitions validate against the quota model (kept loose until the ledger lands)."""
    try:
        from kmrules.quota.definitions import QuotaDefinition
    except ImportError:  # pragma: no cover - the quota package is part of this distribution
        return []
    from pydantic import ValidationError

    problems: list[Problem] = []
    for i, raw in enumerate(variant.quotas):
        try:
            QuotaDefinition.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                problems.append(Problem(f"{source}: quotas[{i}].{loc}", err["msg"]))
    return problems


def stack_key(stack: VariantStack) -> str:
    """A stable cache key for a stack (computed once, when the stack is made)."""
    return stack.key
