"""The fact catalogue: every input field a rule may read, with its type, as data.

`rules/facts.yaml` declares the case's fields; this module turns it into a strict
pydantic model (so a new field is a rule-file change, not a code change) and into
the flat typed catalogue that the condition checker and the engines use.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from kmrules.errors import Problem

FactType = Literal["number", "integer", "date", "string", "bool", "enum"]
FACT_TYPES: tuple[str, ...] = ("number", "integer", "date", "string", "bool", "enum")
_LEAF_KEYS = {"type", "description", "values", "minimum", "maximum", "pattern", "unit", "required"}


@dataclass(frozen=True)
class FactSpec:
    """One leaf input field: its dotted path, type and constraints."""

    path: str
    type: FactType
    description: str
    values: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    unit: str | None = None
    required: bool = False


@dataclass(frozen=True)
class FactCatalogue:
    """All input facts by dotted path, plus the pydantic model that validates a case."""

    facts: dict[str, FactSpec]
    model: type[BaseModel]


def parse_catalogue(data: Any, source: str) -> tuple[dict[str, FactSpec], list[Problem]]:
    """Read the nested `case:` tree of facts.yaml into flat FactSpecs."""
    problems: list[Problem] = []
    facts: dict[str, FactSpec] = {}
    if not isinstance(data, dict) or set(data) != {"case"}:
        return facts, [Problem(source, "facts file must have exactly one top-level key 'case'")]

    def walk(node: Any, prefix: str) -> None:
        if not isinstance(node, dict) or not node:
            problems.append(Problem(f"{source}: {prefix}", "a group must be a non-empty mapping"))
            return
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            if not key.isidentifier():
                problems.append(Problem(f"{source}: {path}", "field names must be identifiers"))
            elif isinstance(value, dict) and "type" in value:
                spec = _leaf(path, value, source, problems)
                if spec is not None:
                    facts[path] = spec
            else:
                walk(value, path)

    walk(data["case"], "")
    return facts, problems


def _leaf(path: str, value: dict[str, Any], source: str, problems: list[Problem]) -> FactSpec | None:
    where = f"{source}:{getattr(value, 'line', '?')}: {path}"
    unknown = set(value) - _LEAF_KEYS
    if unknown:
        problems.append(Problem(where, f"unknown key(s) {sorted(unknown)}"))
        return None
    if value["type"] not in FACT_TYPES:
        problems.append(Problem(where, f"type must be one of {FACT_TYPES}, not {value['type']!r}"))
        return None
    if not value.get("description"):
        problems.append(Problem(where, "every fact needs a description"))
        return None
    values = tuple(str(v) for v in value.get("values", ()))
    if value["type"] == "enum" and not values:
        problems.append(Problem(where, "an enum needs its list of values"))
        return None
    return FactSpec(
        path=path,
        type=value["type"],
        description=str(value["description"]),
        values=values,
        minimum=value.get("minimum"),
        maximum=value.get("maximum"),
        pattern=value.get("pattern"),
        unit=value.get("unit"),
        required=bool(value.get("required", False)),
    )


def _python_type(spec: FactSpec) -> Any:
    if spec.type == "enum":
        return Enum(spec.path.replace(".", "_"), {v: v for v in spec.values}, type=str)
    return {
        "number": float,
        "integer": int,
        "date": dt.date,
        "string": str,
        "bool": bool,
    }[spec.type]


def _iso_date(value: Any) -> Any:
    """Dates arrive as `YYYY-MM-DD` strings (JSON) or date objects; nothing else is a date
    (pydantic's lax mode would read the number 0 as 1970-01-01)."""
    if isinstance(value, dt.datetime):
        raise ValueError("must be a date (YYYY-MM-DD), not a date and time")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"must be a valid date (YYYY-MM-DD): {exc}") from exc
    raise ValueError("must be a date in ISO format (YYYY-MM-DD)")


def _field(spec: FactSpec) -> tuple[Any, Any]:
    kwargs: dict[str, Any] = {"description": spec.description}
    if spec.type in ("number", "integer"):
        if spec.minimum is not None:
            kwargs["ge"] = spec.minimum
        if spec.maximum is not None:
            kwargs["le"] = spec.maximum
    if spec.type == "number":
        kwargs["allow_inf_nan"] = False
    if spec.pattern:
        kwargs["pattern"] = spec.pattern
    if spec.type == "enum":
        kwargs["strict"] = False  # JSON carries enum members as strings
    pytype = _python_type(spec)
    if spec.type == "date":
        pytype = Annotated[dt.date, BeforeValidator(_iso_date)]
    if spec.required:
        return pytype, Field(..., **kwargs)
    return pytype | None, Field(default=None, **kwargs)


def build_model(facts: dict[str, FactSpec], name: str = "Case") -> type[BaseModel]:
    """A strict pydantic model of the nested case: unknown fields and wrong types are errors."""
    tree: dict[str, Any] = {}
    for path, spec in facts.items():
        node = tree
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = spec

    config = ConfigDict(extra="forbid", strict=True)

    def make(node: dict[str, Any], model_name: str) -> type[BaseModel]:
        fields: dict[str, Any] = {}
        for key, child in node.items():
            if isinstance(child, FactSpec):
                fields[key] = _field(child)
            else:
                sub = make(child, model_name + "_" + key)
                fields[key] = (sub | None, Field(default=None))
        return create_model(model_name, __config__=config, **fields)

    return make(tree, name)


def flatten(case: BaseModel, facts: dict[str, FactSpec]) -> dict[str, Any]:
    """Dotted path -> value for every catalogued fact; absent (or null) fields are None."""
    flat: dict[str, Any] = {}
    for path in facts:
        node: Any = case
        for part in path.split("."):
            node = getattr(node, part, None)
            if node is None:
                break
        flat[path] = node.value if isinstance(node, Enum) else node
    return flat
