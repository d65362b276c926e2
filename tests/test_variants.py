"""Variants, packages, compare, counterfactuals and the measures catalogue."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import kmrules
from kmrules.cli import app
from kmrules.cli_extra import register
from kmrules.errors import RequestError, RuleFileError, UnknownVariantError, VariantConflictError
from kmrules.rulebook import DEFAULT_RULES_DIR, load_rulebook

EXAMPLE_PATH = Path(__file__).parent.parent / "examples" / "knowledge_migrant_2023.json"
EXAMPLE = json.loads(EXAMPLE_PATH.read_text())


def _req(salary: float, variant: Any = "baseline", **case: Any) -> dict[str, Any]:
    request = copy.deepcopy(EXAMPLE)
    request["variant"] = variant
    request["case"]["job"]["gross_monthly_salary"] = salary
    request["case"].update(case)
    return request


def test_every_shipped_variant_and_package_loads_and_decides() -> None:
    infos = kmrules.list_variants()
    ids = {v.id for v in infos}
    assert {
        "km_raise_criteria_10pct",
        "km_uniform_criterion",
        "km_uniform_criterion_no_reduced",
        "km_search_period_6m",
        "km_under30_avg_wage_2025",
        "km_tighten_2_11",
    } <= ids
    for info in infos:
        assert info.title and info.description and info.seed_sections
        decision = kmrules.decide(_req(5100, info.id))
        assert decision.variant == info.id
        assert decision.outcome in {"granted", "refused", "undetermined"}


def test_raise_by_ten_percent_uses_the_raised_figures() -> None:
    decision = kmrules.decide(_req(5100, "km_raise_criteria_10pct"))
    salary = next(f for f in decision.findings if f.rule == "KM-SALARY-30PLUS")
    assert salary.required == 5509  # 5,008 x 1.10 = 5,508.8, rounded (seed §2.11 figure)
    assert decision.outcome == "refused"
    assert decision.receipt.parameters["knowledge_migrant.salary.age_30_plus"].changed_by == ["km_raise_criteria_10pct"]


def test_uniform_criterion_applies_the_30_plus_figure_to_a_25_year_old() -> None:
    young = _req(4000, applicant={**EXAMPLE["case"]["applicant"], "birth_date": "1998-01-01"})
    assert kmrules.decide(young).outcome == "granted"  # under-30 criterion 3,672 in 2023
    uniform = kmrules.decide({**young, "variant": "km_uniform_criterion"})
    assert uniform.outcome == "refused"
    assert uniform.failing() == ["KM-SALARY-30PLUS"]


def test_search_period_of_six_months() -> None:
    request = _req(5100, employment_end_date="2023-03-31")
    assert kmrules.decide(request).amounts["search_period_end"].value == "2023-06-30"
    six = kmrules.decide({**request, "variant": "km_search_period_6m"})
    assert six.amounts["search_period_end"].value == "2023-09-30"
    capped = kmrules.decide(
        {**request, "variant": "km_search_period_6m", "case": {**request["case"], "permit_expiry_date": "2023-08-01"}}
    )
    assert capped.amounts["search_period_end"].value == "2023-08-01"


def test_2025_under_30_proposal() -> None:
    young = _req(
        4300, application_date="2025-03-01", applicant={**EXAMPLE["case"]["applicant"], "birth_date": "2000-01-01"}
    )
    assert kmrules.decide(young).outcome == "granted"  # 4,171 in 2025
    proposal = kmrules.decide({**young, "variant": "km_under30_avg_wage_2025"})
    assert proposal.outcome == "refused"
    assert proposal.amounts["salary_needed"].value == 4588


def test_conflicting_variants_need_an_explicit_order(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, rules)
    (rules / "variants" / "km_raise_5pct.yaml").write_text(
        "variant: {id: km_raise_5pct, title: Raise 5%, description: d, seed_sections: ['2.11'], legal_basis: [{seed: '§2.11'}]}\n"
        "parameters:\n  knowledge_migrant.salary.age_30_plus: {scale: 1.05, reference: 'seed §2.11'}\n"
    )
    with pytest.raises(VariantConflictError, match="km_raise_5pct"):
        kmrules.decide(_req(5300, ["km_raise_criteria_10pct", "km_raise_5pct"]), rules_dir=rules)
    ordered = kmrules.decide(
        _req(5300, {"base": ["km_raise_criteria_10pct", "km_raise_5pct"], "order_wins": True}), rules_dir=rules
    )
    salary = next(f for f in ordered.findings if f.rule == "KM-SALARY-30PLUS")
    assert salary.required == round(round(5008 * 1.10) * 1.05)
    (rules / "packages" / "bad.yaml").write_text(
        "package: {id: bad_pkg, title: t, description: d, variants: [km_raise_criteria_10pct, km_raise_5pct]}\n"
    )
    with pytest.raises(RuleFileError, match=r"bad\.yaml"):
        load_rulebook(rules)


def test_inline_what_if_package() -> None:
    what_if = {"base": ["km_search_period_6m"], "parameters": {"knowledge_migrant.salary.age_30_plus": 5200}}
    decision = kmrules.decide(_req(5100, what_if))
    assert decision.outcome == "refused"
    assert decision.amounts["salary_needed"].value == 5200
    assert "what-if" in decision.variant
    with pytest.raises(RequestError, match=r"variant\.parameters\.knowledge_migrant\.salary\.nope"):
        kmrules.decide(_req(5100, {"parameters": {"knowledge_migrant.salary.nope": 1}}))
    with pytest.raises(RequestError, match="must be of type number"):
        kmrules.decide(_req(5100, {"parameters": {"knowledge_migrant.salary.age_30_plus": "high"}}))
    with pytest.raises(UnknownVariantError):
        kmrules.decide(_req(5100, ["km_raise_criteria_10pct", "nope"]))


def test_compare_lists_outcomes_and_differing_criteria() -> None:
    result = kmrules.compare(_req(5100), ["baseline", "km_raise_criteria_10pct", "km_uniform_criterion_no_reduced"])
    dumped = result.model_dump(mode="json")
    assert [r["variant"] for r in dumped["results"]] == [
        "baseline",
        "km_raise_criteria_10pct",
        "km_uniform_criterion_no_reduced",
    ]
    assert result.outcomes == {
        "baseline": "granted",
        "km_raise_criteria_10pct": "refused",
        "km_uniform_criterion_no_reduced": "granted",
    }
    diffs = {d.rule: d for d in result.differences}
    assert diffs["outcome"].results["km_raise_criteria_10pct"] == "refused"
    assert diffs["KM-SALARY-30PLUS"].results == {
        "baseline": "pass",
        "km_raise_criteria_10pct": "fail",
        "km_uniform_criterion_no_reduced": "pass",
    }
    assert diffs["KM-SALARY-UNDER30"].results["km_uniform_criterion_no_reduced"] is None  # switched off
    with pytest.raises(RequestError):
        kmrules.compare(_req(5100), [])


def test_counterfactuals_on_a_refusal() -> None:
    decision = kmrules.decide(_req(4000))
    assert decision.outcome == "refused"
    assert decision.amounts["salary_needed"].value == 5008
    assert decision.counterfactuals["variants_that_grant"] == []
    young = _req(
        3700, applicant={**EXAMPLE["case"]["applicant"], "birth_date": "1998-01-01"}, variant="km_raise_criteria_10pct"
    )
    refused = kmrules.decide(young)
    assert refused.amounts["salary_needed"].value == round(3672 * 1.10)
    assert "km_search_period_6m" in refused.counterfactuals["variants_that_grant"]
    granted = kmrules.decide(_req(6000))
    assert "salary_needed" not in granted.amounts and not granted.counterfactuals
    no_sponsor = _req(6000)
    no_sponsor["case"]["employer"]["recognised_sponsor"] = False
    assert "salary_needed" not in kmrules.decide(no_sponsor).amounts  # not decided by a threshold
    assert "variants_that_grant" not in kmrules.decide(no_sponsor).counterfactuals


def test_measures_catalogue_has_every_section() -> None:
    items = kmrules.measures()
    sections = [m.section for m in items]
    assert sections == [*(f"1.{i}" for i in range(1, 6)), *(f"2.{i}" for i in range(1, 17))]
    by = {m.section: m for m in items}
    assert by["2.11"].tracks == ["D"] and by["2.11"].expected_effect == "fewer"
    assert by["2.6"].expected_effect == "more"
    figures = {float(f.value) for m in items for f in m.figures if isinstance(f.value, int | float)}
    for quoted in (22442, 80000, 22000, 8000, 400, 600, 0.6, 1, 900000, 80):
        assert quoted in figures, quoted
    assert "km_raise_criteria_10pct" in by["2.11"].encoded_by


def test_cli_compare_measures_and_variants() -> None:
    register(app)
    runner = CliRunner()
    out = runner.invoke(app, ["compare", str(EXAMPLE_PATH), "--variants", "baseline,km_raise_criteria_10pct", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["outcomes"] == {"baseline": "granted", "km_raise_criteria_10pct": "refused"}
    table = runner.invoke(app, ["compare", str(EXAMPLE_PATH), "--variants", "baseline,km_raise_criteria_10pct"])
    assert "KM-SALARY-30PLUS" in table.stdout and "5509" in table.stdout
    assert "2.16" in runner.invoke(app, ["measures"]).stdout
    assert "km_tighten_2_11" in runner.invoke(app, ["variants"]).stdout
    bad = runner.invoke(app, ["compare", str(EXAMPLE_PATH), "--variants", "baseline,nope"])
    assert bad.exit_code == 2 and "unknown variant" in bad.stderr
