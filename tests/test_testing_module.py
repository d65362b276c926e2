"""kmrules.testing used the way a policy team would: its own variant file, a few lines of pytest."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from kmrules.rulebook import DEFAULT_RULES_DIR
from kmrules.testing import (
    assert_direction,
    assert_monotone,
    assert_subset_of,
    requests,
    synthetic_population,
)

TEAM_VARIANT = Path(__file__).parent.parent / "examples" / "policy_team" / "km_raise_criteria_5pct.yaml"


@pytest.fixture(scope="module")
def team_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The team's copy of the law: the shipped rules plus its own variant file."""
    rules = tmp_path_factory.mktemp("team") / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    shutil.copy(TEAM_VARIANT, rules / "variants")
    return rules


# --- the policy team's test, as in the README -------------------------------------------
@given(request=requests("knowledge_migrant"))
def test_my_variant_only_tightens(team_rules: Path, request: dict[str, Any]) -> None:
    assert_subset_of(request, variant="km_raise_criteria_5pct", rules_dir=team_rules)
    assert_monotone({**request, "variant": "km_raise_criteria_5pct"}, rules_dir=team_rules)


def test_my_variant_gives_fewer_grants(team_rules: Path) -> None:
    counts = assert_direction(
        synthetic_population(300), variant="km_raise_criteria_5pct", expected="fewer", rules_dir=team_rules
    )
    assert counts["km_raise_criteria_5pct"]["granted"] < counts["baseline"]["granted"]


# -----------------------------------------------------------------------------------------


def test_a_loosening_variant_is_caught(tmp_path: Path) -> None:
    """The helpers must be able to fail: a variant that lowers the criteria is not a subset."""
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    (rules / "variants" / "km_lower.yaml").write_text(
        TEAM_VARIANT.read_text().replace("km_raise_criteria_5pct", "km_lower").replace("scale: 1.05", "scale: 0.8")
    )
    with pytest.raises(AssertionError, match="km_lower"):
        assert_direction(synthetic_population(300), variant="km_lower", expected="fewer", rules_dir=rules)
    population = synthetic_population(200, schemes=("knowledge_migrant",))
    with pytest.raises(AssertionError, match="grants a case"):
        for request in population:
            assert_subset_of(request, variant="km_lower", rules_dir=rules)


@pytest.mark.parametrize(
    "variant",
    ["km_raise_criteria_10pct", "km_uniform_criterion", "km_uniform_criterion_no_reduced", "km_under30_avg_wage_2025"],
)
def test_shipped_tightening_variants_move_grants_in_the_seeds_direction(variant: str) -> None:
    counts = assert_direction(synthetic_population(400), variant=variant, expected="fewer")
    assert counts[variant]["granted"] < counts["baseline"]["granted"]
