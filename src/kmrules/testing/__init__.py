"""Public testing helpers: hypothesis strategies for valid requests and invariant checks.

A policy team holds its own variant file to the package's guarantees in a few lines:

    from hypothesis import given
    from kmrules.testing import requests, assert_subset_of

    @given(requests("knowledge_migrant"))
    def test_my_variant_only_tightens(request):
        assert_subset_of(request, variant="my_variant", baseline="baseline")
"""

from __future__ import annotations

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
    "cases",
    "change_dates",
    "money_boundaries",
    "requests",
    "salaries",
]
