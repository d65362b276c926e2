"""The durable_rules backend, wrapped so that none of its hazards can reach a decision.

Measured hazards and what this module does about each:
- fails open (a missing / None / NaN / mistyped field matches no rule): input is validated
  strictly before it gets here; every fact a rule reads is always present with a typed
  value plus an explicit `known` flag; every criterion has rules for pass, fail and
  not_applicable (mutually exclusive); a sentinel rule proves the case was seen. Silence on
  a criterion is accepted only when a fact it reads is unknown (then Kleene logic allows
  `undetermined`); silence on fully known input is an EngineError, never a grant.
- one pattern holds at most 32 expressions (error 113): conditions are compiled to
  disjunctive normal form, one rule per conjunction, and comparisons with a parameter or
  another fact become comparisons of a precomputed difference with 0.
- the timer/dispatcher thread gave wrong results: `QuietHost` never starts it.
- two threads on one session crashed: one process-wide lock around every engine call.
- identical facts raise MessageObservedException: each fact carries a fresh serial number.
- `delete_state` after MessageNotHandledException aborted the process: we never call
  delete_state; facts are retracted; a host that raised is thrown away and rebuilt.
- ~1,024 live sessions exhaust memory: one session (the default sid) per compiled ruleset.
- a ruleset name cannot be re-registered on a host: one Host per compiled ruleset.
- exceptions in actions are swallowed, and each action costs a JSON round-trip of the
  state: no Python action runs inside durable_rules; the driver reads the fired rule names
  from the engine's action queue (`_assert_collect_retract`), and any error or unexpected
  return code of the engine is raised as EngineError.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import durable_rules_engine
from durable import engine as durable_engine

from kmrules import conditions as cond
from kmrules.errors import EngineError
from kmrules.oracle import Result, criterion_result
from kmrules.resolve import ResolvedRules
from kmrules.rulecompile import (
    PLACEHOLDER,
    Leaf,
    criterion_exprs,
    dnf,
    encode_value,
    fact_key,
    known_key,
    leaf_order,
    pair_key,
    pattern,
)

ENGINE_NAME = "durable_rules 2.0.28"
RESULTS: tuple[Result, ...] = ("pass", "fail", "not_applicable", "undetermined")
_RESULT_OF: dict[str, Result] = {r: r for r in RESULTS}
_LOCK = threading.Lock()
_SERIAL = itertools.count(1)

EngineMemo = dict[tuple[Any, ...], dict[str, Result]]
"""Results of runs already made, by (compiled ruleset, encoded fact without its serial): the
engine is deterministic, so one question about one case (a decision and its counterfactuals)
never runs the same ruleset on the same fact twice. Make one per question, never global."""


class QuietHost(durable_engine.Host):  # type: ignore[misc]
    """A durable_rules Host without its timer/dispatcher threads (we never post events)."""

    def _run(self) -> None:
        return None


@dataclass
class CompiledRuleset:
    """One resolved rule set, registered on its own quiet durable_rules host."""

    name: str
    host: Any
    criterion_ids: tuple[str, ...]
    criterion_facts: tuple[tuple[str, ...], ...]
    fact_types: dict[str, str]
    pairs: tuple[tuple[str, str, str], ...]
    rule_count: int
    slots: tuple[tuple[str, str, str | None, str | None], ...]
    """(fact path, type, short key of its known flag, short key of its value): None where no
    pattern reads that key, so it is not sent (every property costs on every alpha node)."""
    names: dict[str, str]
    """Short fact key -> the readable key it stands for (known_key / fact_key / pair_key)."""
    definition: dict[str, Any]
    handle: int


def _never_called(_closure: Any) -> None:
    """durable_rules requires an action per rule; ours are read from the engine's queue and
    never run through durable_rules' Python action machinery, which swallows exceptions."""
    raise EngineError("a durable_rules action was dispatched through the Host; it must not be")


def _pairs(c: cond.Condition) -> list[tuple[str, str, str]]:
    """(synthetic key, left fact, right operand) for every comparison with a fact or parameter;
    the right operand is a fact path, or "param:" + a parameter name."""
    if isinstance(c, cond.Compare) and isinstance(c.operand, cond.FactRef):
        return [(pair_key(c), c.fact, c.operand.path)]
    if isinstance(c, cond.Compare) and isinstance(c.operand, cond.ParamRef):
        return [(pair_key(c), c.fact, "param:" + c.operand.name)]
    if isinstance(c, cond.All | cond.AnyOf):
        return [p for i in c.items for p in _pairs(i)]
    if isinstance(c, cond.Not):
        return _pairs(c.item)
    return []


def compile_rules(rules: ResolvedRules, fact_types: Mapping[str, str]) -> CompiledRuleset:
    """Compile resolved rules (parameters inlined as constants) to one durable_rules ruleset."""
    definition: dict[str, Any] = {"sentinel": {"all": [{"m": {"kind": "case"}}], "run": _never_called}}
    used_facts: list[str] = []
    per_criterion: list[tuple[str, ...]] = []
    pairs: list[tuple[str, str, str]] = []
    terms: dict[str, frozenset[Leaf]] = {}
    for index, crit in enumerate(rules.criteria):
        read = cond.facts_of(crit.applies) + cond.facts_of(crit.holds)
        per_criterion.append(tuple(dict.fromkeys(read)))
        used_facts += read
        pairs += _pairs(crit.applies) + _pairs(crit.holds)
        for result, expr in criterion_exprs(crit.applies, crit.holds).items():
            for k, term in enumerate(dnf(expr)):
                terms[f"{index}__{result}__{k}"] = term
    order = leaf_order(terms.values())
    for rule_name, term in terms.items():
        definition[rule_name] = {"all": [{"m": pattern(term, order)}], "run": _never_called}
    short = short_names(definition)
    definition = {rule: {**spec, "all": renamed(spec["all"], short)} for rule, spec in definition.items()}
    name = "kmrules_" + rules.structure_key
    host = QuietHost()
    host.register_rulesets({name: definition})
    return CompiledRuleset(
        name=name,
        host=host,
        criterion_ids=tuple(c.id for c in rules.criteria),
        criterion_facts=tuple(per_criterion),
        fact_types={p: fact_types[p] for p in dict.fromkeys(used_facts)},
        pairs=tuple((short[key], left, right) for key, left, right in dict.fromkeys(pairs) if key in short),
        rule_count=len(definition),
        slots=tuple(
            (p, fact_types[p], short.get(known_key(p)), short.get(fact_key(p))) for p in dict.fromkeys(used_facts)
        ),
        names={v: k for k, v in short.items()},
        definition=definition,
        handle=host.get_ruleset(name)._handle,
    )


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "number": (int, float),
    "integer": (int,),
    "date": (dt.date,),
    "string": (str,),
    "enum": (str,),
    "bool": (bool,),
}


def short_names(definition: Mapping[str, Any]) -> dict[str, str]:
    """A short key ("v0", "v1", ...) for every fact key the rules' patterns read, in a fixed
    order. durable_rules parses every property of an asserted fact and passes over them at each
    alpha node it reaches: short keys, and no property that no pattern reads, make a run cheaper
    (measured on a trivial ruleset: 62 us for the 45 readable keys, 45 us for short ones)."""
    read: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not key.startswith("$") and key not in ("m", "kind"):
                    read.add(key)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for spec in definition.values():
        walk(spec["all"])
    return {key: f"v{i}" for i, key in enumerate(sorted(read))}


def renamed(node: Any, short: Mapping[str, str]) -> Any:
    """A pattern with its fact keys replaced by their short names (operators and "m" kept)."""
    if isinstance(node, dict):
        return {short.get(key, key): renamed(value, short) for key, value in node.items()}
    if isinstance(node, list):
        return [renamed(item, short) for item in node]
    return node


def _typed(path: str, ftype: str, value: Any) -> None:
    """durable_rules compares a string with a number without complaint: refuse to send one."""
    ok = isinstance(value, _PYTHON_TYPES[ftype]) and (ftype == "bool" or not isinstance(value, bool))
    if ok and ftype == "number" and not math.isfinite(value):
        ok = False
    if not ok:
        raise EngineError(f"fact {path} must be {ftype}, got {value!r}: refusing to run the engine on it")


def encode_fact(compiled: CompiledRuleset, facts: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Every fact the rules read, always present and typed, with an explicit known flag."""
    fact: dict[str, Any] = {"kind": "case", "serial": next(_SERIAL)}
    for path, ftype, kkey, fkey in compiled.slots:
        value = facts.get(path)
        if value is None:
            if kkey is not None:
                fact[kkey] = False
            if fkey is not None:
                fact[fkey] = PLACEHOLDER[ftype]
        else:
            _typed(path, ftype, value)
            if kkey is not None:
                fact[kkey] = True
            if fkey is not None:
                fact[fkey] = value.toordinal() if ftype == "date" else value
    for key, left, right in compiled.pairs:
        a = facts.get(left)
        b = params[right[6:]] if right.startswith("param:") else facts.get(right)
        if a is None or b is None:
            fact[key] = 0
        elif isinstance(a, dt.date | int | float) and not isinstance(a, bool):
            fact[key] = encode_value(a) - encode_value(b)
        else:
            fact[key] = 0 if a == b else 1
    return fact


def _drain(handle: int, state: int) -> list[str]:
    """Take every pending action of a state: its rule name is the message's first key."""
    names: list[str] = []
    result = durable_rules_engine.start_action_for_state(handle, state)
    while result:
        message: str = result[1]
        names.append(message[2 : message.index('"', 2)])
        following = durable_rules_engine.complete_and_start_action(handle, state)
        result = (None, following) if following else None
    return names


def _assert_collect_retract(compiled: CompiledRuleset, fact: dict[str, Any]) -> list[str]:
    """Assert the fact, read which rules fired, retract it: the engine's own C calls.

    durable_rules' Python Host runs each action through a Promise with a JSON round-trip of
    the session state (the ~25-30 us per firing measured in the issue). Our actions do nothing
    but record their name, so the driver reads the names straight from the engine's action
    queue; no Python action code runs inside durable_rules at all.
    """
    payload = json.dumps(fact)
    code, state = durable_rules_engine.assert_fact(compiled.handle, payload)
    if code != 0:
        raise EngineError(f"durable_rules answered code {code} on assert (1: no rule matched, 2: fact observed twice)")
    fired = _drain(compiled.handle, state)
    code, state = durable_rules_engine.retract_fact(compiled.handle, payload)
    if code != 0:
        raise EngineError(f"durable_rules answered code {code} on retract")
    after = _drain(compiled.handle, state)
    if after:
        raise EngineError(f"rules fired on retraction: {after}")
    return fired


class DurableBackend:
    """Runs compiled rulesets one case at a time, under one lock, never trusting silence."""

    def __init__(self) -> None:
        self._compiled: dict[str, CompiledRuleset] = {}

    def compiled(self, rules: ResolvedRules, fact_types: Mapping[str, str]) -> CompiledRuleset:
        found = self._compiled.get(rules.structure_key)
        if found is None:
            found = compile_rules(rules, fact_types)
            self._compiled[rules.structure_key] = found
        return found

    def run(
        self,
        rules: ResolvedRules,
        facts: Mapping[str, Any],
        fact_types: Mapping[str, str],
        memo: EngineMemo | None = None,
    ) -> dict[str, Result]:
        """Result per criterion id; EngineError unless the firings are complete and consistent.

        With a `memo`, a run it already holds (same compiled ruleset, same encoded fact) is
        answered from it: e.g. a variant that changes nothing this case's rules read."""
        with _LOCK:
            compiled = self.compiled(rules, fact_types)
            fact = encode_fact(compiled, facts, rules.param_values)
            key = (compiled.name, *(v for k, v in fact.items() if k != "serial")) if memo is not None else ()
            if memo is not None and (known := memo.get(key)) is not None:
                return dict(known)
            try:
                fired = _assert_collect_retract(compiled, fact)
                results = _read_firings(compiled, fired, rules, facts)
            except EngineError:
                self._discard(compiled, fact)
                raise
            except Exception as exc:  # durable_rules_engine.error and anything it raises
                self._discard(compiled, fact)
                raise EngineError(f"durable_rules failed: {exc!r}") from exc
            if memo is not None:
                memo[key] = dict(results)
            return results

    def _discard(self, compiled: CompiledRuleset, fact: dict[str, Any] | None) -> None:
        """A host that raised is never reused: the next decision compiles a fresh one."""
        if fact is not None:
            with contextlib.suppress(Exception):
                compiled.host.retract_fact(compiled.name, fact)
        for key, value in list(self._compiled.items()):
            if value is compiled:
                del self._compiled[key]


def _read_firings(
    compiled: CompiledRuleset, fired: list[str], rules: ResolvedRules, facts: Mapping[str, Any]
) -> dict[str, Result]:
    """Exactly one result per criterion; silence only where the criterion is truly undecidable."""
    if fired.count("sentinel") != 1:
        raise EngineError(f"sentinel fired {fired.count('sentinel')} times: the case was not seen exactly once")
    by_index: dict[int, set[str]] = {}
    for name in fired:
        if name == "sentinel":
            continue
        position, result, _term = name.split("__")
        by_index.setdefault(int(position), set()).add(result)
    results: dict[str, Result] = {}
    for index, crit in enumerate(rules.criteria):
        got = by_index.get(index, set())
        if len(got) > 1:
            raise EngineError(f"criterion {crit.id}: contradictory results {sorted(got)}")
        if got:
            (only,) = got
            results[crit.id] = _RESULT_OF[only]
            continue
        # Silence: accepted only if three-valued logic agrees the criterion cannot be decided.
        if criterion_result(crit, facts, rules.param_values) != "undetermined":
            raise EngineError(f"criterion {crit.id}: no rule fired on a decidable case (the engine failed open)")
        results[crit.id] = "undetermined"
    return results
