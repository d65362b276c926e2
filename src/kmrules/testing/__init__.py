"""Public testing helpers: hypothesis strategies for valid requests and invariant checks.

A policy team holds its own variant file to the package's guarantees in a few lines:

    from hypothesis import given
    from kmrules.testing import requests, assert_subset_of

    @given(requests("knowledge_migrant"))
    def test_my_variant_only_tightens(request):
        assert_subset_of(request, variant="my_variant", baseline="baseline")

Strategies: `requests(scheme, variant)`, `all_scheme_requests()`, `cases()`, `salaries()`,
`application_dates()` (leaning to the boundaries). Invariants: `assert_monotone`,
`assert_subset_of`, `assert_deterministic`, `assert_order_stable`, `assert_explained`,
`assert_direction` (population level), `grant_counts`.
"""

from __future__ import annotations

from kmrules.testing.invariants import (
    assert_deterministic,
    assert_direction,
    assert_explained,
    assert_monotone,
    assert_order_stable,
    assert_subset_of,
    grant_counts,
)
from kmrules.testing.population import synthetic_population
from kmrules.testing.strategies import (
    all_scheme_requests,
    application_dates,
    cases,
    change_dates,
    money_boundaries,
    requests,
    salaries,
)

__all__ = [
    "all_scheme_requests",
    "application_dates",
    "assert_deterministic",
    "assert_direction",
    "assert_explained",
    "assert_monotone",
    "assert_order_stable",
    "assert_subset_of",
    "cases",
    "change_dates",
    "grant_counts",
    "money_boundaries",
    "requests",
    "salaries",
    "synthetic_population",
]
