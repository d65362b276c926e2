"""A quota or target over a population: when it fills, and whom it refuses, by segment.

Decides every request under one variant (the oracle backend by default: fast, and held to the
durable engine by the differential tests), then runs the cases the criteria grant through an
in-memory ledger in application-date order (`kmrules.quota.memory.simulate_allocation`).
Nothing touches a database: a simulation never takes a real place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kmrules.decide import Backend, decide_resolved, get_rulebook
from kmrules.overlay import stack_for
from kmrules.quota.definitions import fact_value
from kmrules.quota.memory import SimulatedCase, simulate_allocation
from kmrules.quota.models import AllocationReport
from kmrules.quota.wiring import derive_case_id, parse_definitions, undecided_segments
from kmrules.request import parse_request
from kmrules.resolve import resolve
from kmrules.rulebook import Rulebook

__all__ = ["SCHEME_SEGMENT", "simulate_quota"]

SCHEME_SEGMENT = "scheme"
"""Segment key under which each case's scheme is counted; a definition only counts its own scheme."""


def simulate_quota(
    requests: Iterable[Mapping[str, Any]],
    variant: str | list[str] | dict[str, Any],
    *,
    rules_dir: str | Path | None = None,
    book: Rulebook | None = None,
    backend: Backend = "oracle",
    segments: Sequence[str] = ("job.sector",),
) -> AllocationReport:
    """Allocate the quotas and targets of `variant` (an id, a package or a list of ids) to a
    population; every request is decided under `variant`, whatever its own says.

    The report breaks places taken and refusals down by each fact path in `segments`, by the
    facts the definitions segment on, and by scheme. Case ids: the request's `case_id`, or the
    same hash the decision service derives.
    """
    book = book or get_rulebook(rules_dir)
    stack = stack_for(book, variant)
    defns = parse_definitions(q for v in stack.variants for q in v.quotas)
    paths = sorted({*segments, *(path for d in defns for path in d.segment)})
    cases: list[SimulatedCase] = []
    for request in requests:
        envelope, facts, on = parse_request(book, {**request, "variant": variant})
        rules = resolve(book, envelope.scheme, stack, on)
        decision = decide_resolved(book, rules, facts, backend, explain_more=False)
        seen: dict[str, object] = {path: fact_value(facts, path) for path in paths}
        seen[SCHEME_SEGMENT] = envelope.scheme
        case_id = envelope.case_id or derive_case_id(envelope.scheme, facts)
        # as in the decision service: a case a quota may or may not count is not granted
        granted = decision.outcome == "granted" and not undecided_segments(rules.quotas, on, facts)
        cases.append((case_id, on, seen, granted))
    scoped = [d.model_copy(update={"segment": {**d.segment, SCHEME_SEGMENT: d.scheme}}) for d in defns]
    return simulate_allocation(cases, scoped)
