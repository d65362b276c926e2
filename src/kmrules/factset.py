"""Build the fact set of one case under resolved rules: the case's fields plus derived facts.

A derived fact whose inputs are unknown is itself unknown (None) and remembers which
case fields it was waiting for, so `missing` can name real input fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kmrules.derive import REGISTRY
from kmrules.errors import Problem, RequestError
from kmrules.resolve import ResolvedRules


def derive_facts(rules: ResolvedRules, case_facts: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, set[str]]]:
    """Return (facts, inputs) where inputs maps each derived fact to the case fields it reads."""
    facts = dict(case_facts)
    inputs: dict[str, set[str]] = {}
    params = rules.param_values
    for derived in rules.derived:
        fn = REGISTRY[derived.fn]
        args: list[Any] = []
        sources: set[str] = set()
        for arg in derived.args:
            if "fact" in arg:
                sources |= inputs.get(arg["fact"], {arg["fact"]})
                args.append(facts.get(arg["fact"]))
            elif "param" in arg:
                args.append(params[arg["param"]])
            else:
                args.append(arg["value"])
        inputs[derived.name] = sources
        required_unknown = any(a is None and not t.endswith("?") for a, t in zip(args, fn.arg_types, strict=True))
        try:
            facts[derived.name] = None if required_unknown else fn.function(*args)
        except (OverflowError, ValueError) as exc:  # e.g. a date near year 9999 plus 3 years
            fields = sorted(f"case.{field}" for field in sources)
            raise RequestError(
                [
                    Problem(field, f"out of the range the rules can compute with ({derived.fn}: {exc})")
                    for field in fields
                ]
            ) from exc
    return facts, inputs


def input_fields(names: set[str], inputs: Mapping[str, set[str]], facts: Mapping[str, Any]) -> set[str]:
    """Map unknown fact names (case or derived) to the unknown case input fields behind them."""
    out: set[str] = set()
    for name in names:
        out |= {field for field in inputs.get(name, {name}) if facts.get(field) is None}
    return out


def params_behind(fact: str, rules: ResolvedRules) -> set[str]:
    """The parameters a fact's derivation reads, through every derived fact it is built from
    (empty for a case field): what must be equal for the fact to be equal under two rule sets."""
    out: set[str] = set()
    by_name = {d.name: d for d in rules.derived}
    stack = [fact]
    while stack:
        derived = by_name.get(stack.pop())
        if derived is None:
            continue
        for arg in derived.args:
            if "param" in arg:
                out.add(arg["param"])
            elif "fact" in arg:
                stack.append(arg["fact"])
    return out
