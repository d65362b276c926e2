"""The closed condition language: parse, type-check and evaluate (three-valued).

A condition is a small tree: `all`, `any`, `not`, `ref` (a named predicate), `known`
(is a fact given?) and comparisons `{fact: path, <op>: operand}` where the operand is a
literal, `{param: name}` or `{fact: path}`. No eval, no Python in YAML.

Evaluation is Kleene logic: an unknown fact gives `None`, and `None` only survives
where the known parts cannot decide. That is what makes "a missing field" an
`undetermined` finding instead of a silent pass or fail. This module is also the
oracle: a plain interpreter that the durable_rules backend is tested against.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kmrules.errors import Problem

COMPARATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in")
NEGATION = {
    "eq": "ne",
    "ne": "eq",
    "lt": "gte",
    "gte": "lt",
    "lte": "gt",
    "gt": "lte",
    "in": "not_in",
    "not_in": "in",
}
ORDERED_TYPES = {"number", "integer", "date"}
NUMERIC = {"number", "integer"}

Scalar = float | int | str | bool | dt.date


@dataclass(frozen=True)
class FactRef:
    """An operand read from the case (or a derived fact)."""

    path: str


@dataclass(frozen=True)
class ParamRef:
    """An operand read from a resolved parameter."""

    name: str


@dataclass(frozen=True)
class Literal:
    """A constant operand (a scalar, or a tuple for `in` / `not_in`)."""

    value: Scalar | tuple[Scalar, ...]


Operand = FactRef | ParamRef | Literal


@dataclass(frozen=True)
class Compare:
    """`fact <op> operand`."""

    fact: str
    op: str
    operand: Operand


@dataclass(frozen=True)
class Known:
    """True when the fact is given, false when absent; never unknown itself."""

    fact: str


@dataclass(frozen=True)
class All:
    """Conjunction (empty: true)."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    """Disjunction (empty: false)."""

    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    """Negation."""

    item: Condition


@dataclass(frozen=True)
class Ref:
    """A named predicate; replaced by its body when the rules are resolved."""

    name: str


Condition = Compare | Known | All | AnyOf | Not | Ref
TRUE: Condition = All(())


@dataclass
class TypeContext:
    """What a condition may refer to: fact types, parameter types, predicate names, enum values."""

    fact_types: Mapping[str, str]
    param_types: Mapping[str, str]
    predicates: Mapping[str, Any]
    enum_values: Mapping[str, tuple[str, ...]]


def parse(data: Any, where: str, ctx: TypeContext, problems: list[Problem]) -> Condition:
    """Parse and type-check one condition; problems are appended, a placeholder returned."""
    if not isinstance(data, dict) or not data:
        problems.append(Problem(where, f"a condition must be a non-empty mapping, not {data!r}"))
        return TRUE
    line = getattr(data, "line", None)
    here = f"{where} (line {line})" if line else where
    keys = set(data)
    if keys == {"all"} or keys == {"any"}:
        key = next(iter(keys))
        items = data[key]
        if not isinstance(items, list):
            problems.append(Problem(here, f"'{key}' takes a list of conditions"))
            return TRUE
        parsed = tuple(parse(item, f"{where}.{key}[{i}]", ctx, problems) for i, item in enumerate(items))
        return All(parsed) if key == "all" else AnyOf(parsed)
    if keys == {"not"}:
        return Not(parse(data["not"], f"{where}.not", ctx, problems))
    if keys == {"ref"}:
        name = data["ref"]
        if name not in ctx.predicates:
            problems.append(Problem(here, f"dangling reference: no predicate named {name!r}"))
        return Ref(str(name))
    if keys == {"known"}:
        path = data["known"]
        if path not in ctx.fact_types:
            problems.append(Problem(here, f"unknown fact {path!r}"))
        return Known(str(path))
    if "fact" in keys:
        return _parse_compare(data, here, ctx, problems)
    problems.append(Problem(here, f"unknown condition keys {sorted(keys)}; use all/any/not/ref/known/fact"))
    return TRUE


def _parse_compare(data: dict[str, Any], here: str, ctx: TypeContext, problems: list[Problem]) -> Condition:
    ops = [k for k in data if k != "fact"]
    path = data["fact"]
    if len(ops) != 1 or ops[0] not in COMPARATORS:
        problems.append(Problem(here, f"a comparison needs exactly one operator of {COMPARATORS}, got {ops}"))
        return TRUE
    op = ops[0]
    ftype = ctx.fact_types.get(path)
    if ftype is None:
        problems.append(Problem(here, f"unknown fact {path!r}"))
        return TRUE
    raw = data[op]
    operand: Operand
    if op in ("in", "not_in"):
        if not isinstance(raw, list) or not raw:
            problems.append(Problem(here, f"'{op}' takes a non-empty list of literals"))
            return TRUE
        for item in raw:
            _check_literal(item, ftype, path, here, ctx, problems)
        operand = Literal(tuple(raw))
    elif isinstance(raw, dict) and set(raw) == {"param"}:
        ptype = ctx.param_types.get(raw["param"])
        if ptype is None:
            problems.append(Problem(here, f"dangling reference: no parameter named {raw['param']!r}"))
        elif not _compatible(ftype, ptype):
            problems.append(
                Problem(here, f"type mismatch: fact {path} is {ftype}, parameter {raw['param']} is {ptype}")
            )
        operand = ParamRef(str(raw["param"]))
    elif isinstance(raw, dict) and set(raw) == {"fact"}:
        otype = ctx.fact_types.get(raw["fact"])
        if otype is None:
            problems.append(Problem(here, f"unknown fact {raw['fact']!r}"))
        elif not _compatible(ftype, otype):
            problems.append(Problem(here, f"type mismatch: {path} is {ftype}, {raw['fact']} is {otype}"))
        operand = FactRef(str(raw["fact"]))
    else:
        _check_literal(raw, ftype, path, here, ctx, problems)
        operand = Literal(raw)
    if op in ("lt", "lte", "gt", "gte") and ftype not in ORDERED_TYPES:
        problems.append(Problem(here, f"'{op}' needs a number or date, but {path} is {ftype}"))
    return Compare(str(path), op, operand)


def _compatible(a: str, b: str) -> bool:
    return a == b or (a in NUMERIC and b in NUMERIC) or {a, b} <= {"string", "enum"}


def _check_literal(value: Any, ftype: str, path: str, here: str, ctx: TypeContext, problems: list[Problem]) -> None:
    ok = {
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "date": isinstance(value, dt.date),
        "string": isinstance(value, str),
        "enum": isinstance(value, str),
        "bool": isinstance(value, bool),
    }[ftype]
    if not ok:
        problems.append(Problem(here, f"wrong type: {path} is {ftype}, literal {value!r} is not"))
    elif ftype == "enum" and value not in ctx.enum_values.get(path, ()):
        problems.append(
            Problem(here, f"{value!r} is not a value of {path} ({', '.join(ctx.enum_values.get(path, ()))})")
        )


def inline(cond: Condition, predicates: Mapping[str, Condition], seen: tuple[str, ...] = ()) -> Condition:
    """Replace every `ref` by its predicate's body; a cycle is a ValueError naming it."""
    if isinstance(cond, Ref):
        if cond.name in seen:
            raise ValueError("reference cycle: " + " -> ".join((*seen, cond.name)))
        return inline(predicates[cond.name], predicates, (*seen, cond.name))
    if isinstance(cond, All):
        return All(tuple(inline(c, predicates, seen) for c in cond.items))
    if isinstance(cond, AnyOf):
        return AnyOf(tuple(inline(c, predicates, seen) for c in cond.items))
    if isinstance(cond, Not):
        return Not(inline(cond.item, predicates, seen))
    return cond


def operand_value(operand: Operand, facts: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
    """The value of an operand, None when it is an unknown fact."""
    if isinstance(operand, FactRef):
        return facts.get(operand.path)
    if isinstance(operand, ParamRef):
        return params[operand.name]
    return operand.value


COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: bool(a == b),
    "ne": lambda a, b: bool(a != b),
    "lt": lambda a, b: bool(a < b),
    "lte": lambda a, b: bool(a <= b),
    "gt": lambda a, b: bool(a > b),
    "gte": lambda a, b: bool(a >= b),
    "in": lambda a, b: a in b,
    "not_in": lambda a, b: a not in b,
}


def evaluate(cond: Condition, facts: Mapping[str, Any], params: Mapping[str, Any]) -> bool | None:
    """Three-valued truth of an inlined condition: True, False, or None (not decidable)."""
    if isinstance(cond, Compare):
        left = facts.get(cond.fact)
        right = operand_value(cond.operand, facts, params)
        if left is None or right is None:
            return None
        return COMPARE[cond.op](left, right)
    if isinstance(cond, Known):
        return facts.get(cond.fact) is not None
    if isinstance(cond, All):
        values = [evaluate(c, facts, params) for c in cond.items]
        if False in values:
            return False
        return None if None in values else True
    if isinstance(cond, AnyOf):
        values = [evaluate(c, facts, params) for c in cond.items]
        if True in values:
            return True
        return None if None in values else False
    if isinstance(cond, Not):
        value = evaluate(cond.item, facts, params)
        return None if value is None else not value
    raise TypeError(f"condition not inlined: {cond!r}")


def undecided_facts(cond: Condition, facts: Mapping[str, Any], params: Mapping[str, Any]) -> set[str]:
    """The unknown facts that keep an undecided condition undecided (empty when it is decided)."""
    if evaluate(cond, facts, params) is not None:
        return set()
    if isinstance(cond, Compare):
        missing = {cond.fact} if facts.get(cond.fact) is None else set()
        if isinstance(cond.operand, FactRef) and facts.get(cond.operand.path) is None:
            missing.add(cond.operand.path)
        return missing
    if isinstance(cond, All | AnyOf):
        out: set[str] = set()
        for item in cond.items:
            out |= undecided_facts(item, facts, params)
        return out
    if isinstance(cond, Not):
        return undecided_facts(cond.item, facts, params)
    return set()


def facts_of(cond: Condition) -> list[str]:
    """Facts a condition reads, in order of first appearance."""
    out: list[str] = []

    def walk(c: Condition) -> None:
        if isinstance(c, Compare):
            out.append(c.fact)
            if isinstance(c.operand, FactRef):
                out.append(c.operand.path)
        elif isinstance(c, Known):
            out.append(c.fact)
        elif isinstance(c, All | AnyOf):
            for item in c.items:
                walk(item)
        elif isinstance(c, Not):
            walk(c.item)

    walk(cond)
    return list(dict.fromkeys(out))


def params_of(cond: Condition) -> list[str]:
    """Parameters a condition reads, in order of first appearance."""
    out: list[str] = []

    def walk(c: Condition) -> None:
        if isinstance(c, Compare) and isinstance(c.operand, ParamRef):
            out.append(c.operand.name)
        elif isinstance(c, All | AnyOf):
            for item in c.items:
                walk(item)
        elif isinstance(c, Not):
            walk(c.item)

    walk(cond)
    return list(dict.fromkeys(out))


def predicate_refs(cond: Condition) -> list[str]:
    """Names of the predicates a (not yet inlined) condition refers to."""
    if isinstance(cond, Ref):
        return [cond.name]
    if isinstance(cond, All | AnyOf):
        return [r for item in cond.items for r in predicate_refs(item)]
    if isinstance(cond, Not):
        return predicate_refs(cond.item)
    return []
