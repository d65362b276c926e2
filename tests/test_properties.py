"""Property-based guarantees of the rules and the shipped variants (issue: variants)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import kmrules
from kmrules.overlay import base_value
from kmrules.testing import (
    assert_deterministic,
    assert_explained,
    assert_monotone,
    assert_order_stable,
    assert_subset_of,
    requests,
)

KM = "knowledge_migrant"


@given(requests(KM, complete=True))
def test_more_salary_never_turns_a_grant_into_a_refusal(request: dict[str, Any]) -> None:
    assert_monotone(request)


@given(requests("eu_blue_card", complete=True))
def test_blue_card_is_monotone_in_salary(request: dict[str, Any]) -> None:
    assert_monotone(request)


@given(requests(KM))
def test_raising_criteria_never_grants_what_the_baseline_refuses(request: dict[str, Any]) -> None:
    assert_subset_of(request, variant="km_raise_criteria_10pct")


@given(requests(KM))
def test_uniform_criterion_at_the_highest_figure_grants_a_subset(request: dict[str, Any]) -> None:
    assert_subset_of(request, variant="km_uniform_criterion_no_reduced")
    assert_subset_of(request, variant="km_uniform_criterion")


@given(
    requests(KM),
    st.sampled_from(
        [
            ["km_raise_criteria_10pct", "km_search_period_6m"],
            ["km_uniform_criterion", "km_search_period_6m"],
            ["km_raise_criteria_10pct", "km_uniform_criterion"],
        ]
    ),
)
def test_variants_apply_deterministically_and_order_stably(request: dict[str, Any], variants: list[str]) -> None:
    assert_deterministic({**request, "variant": variants})
    assert_order_stable(request, variants)


@given(st.sampled_from(sorted(kmrules.get_rulebook().parameters)), st.dates(dt.date(2021, 1, 1), dt.date(2026, 12, 31)))
def test_parameters_are_piecewise_constant_with_documented_change_dates(name: str, day: dt.date) -> None:
    spec = kmrules.get_rulebook().parameters[name]
    starts = sorted(v.valid_from for v in spec.values)
    if day < starts[0]:
        return
    value, _end = base_value(spec, name, day)
    last_change = max(s for s in starts if s <= day)
    assert value.valid_from == last_change
    assert base_value(spec, name, last_change)[0].value == value.value


@given(
    st.one_of(requests(KM), requests("eu_blue_card")),
    st.sampled_from(["baseline", *sorted(kmrules.get_rulebook().variants)]),
)
def test_no_finding_lacks_a_legal_basis(request: dict[str, Any], variant: str) -> None:
    assert_explained(kmrules.decide({**request, "variant": variant}))
