"""The read-only law endpoints: schemes, variants, parameters on a date, rules, measures."""

from __future__ import annotations

from typing import Any

import jsonschema_rs  # installed with schemathesis
import pytest
from fastapi.testclient import TestClient

import kmrules
from api.examples import DECISION_REQUEST


@pytest.fixture
def reader(auth: dict[str, dict[str, str]]) -> dict[str, str]:
    return auth["caseworker"]


def test_schemes_carry_the_case_schema(client: TestClient, reader: dict[str, str]) -> None:
    schemes = {s["id"]: s for s in client.get("/v1/schemes", headers=reader).json()}
    assert {"knowledge_migrant", "eu_blue_card"} <= set(schemes)
    km = schemes["knowledge_migrant"]
    assert "KM-SALARY-30PLUS" in km["criteria"] and km["legal_basis"]
    schema = km["case_schema"]
    validator = jsonschema_rs.validator_for(schema)
    assert validator.is_valid(DECISION_REQUEST["case"])
    salary = schema["$defs"]["Case_job"]["properties"]["gross_monthly_salary"]
    assert "anyOf" in salary or "type" in salary
    assert not validator.is_valid({**DECISION_REQUEST["case"], "unknown": 1})  # as strict as the rule core


def test_variants_match_the_rule_core(client: TestClient, reader: dict[str, str], settings: Any) -> None:
    listed = client.get("/v1/variants", headers=reader).json()
    assert listed == [v.model_dump(mode="json") for v in kmrules.list_variants(settings.rules_dir)]
    detail = client.get("/v1/variants/km_raise_criteria_10pct", headers=reader).json()
    assert detail["kind"] == "variant" and detail["parameter_changes"] and detail["legal_basis"]
    package = next(v for v in listed if v["kind"] == "package")
    assert client.get(f"/v1/variants/{package['id']}", headers=reader).json()["variants"] == package["variants"]
    missing = client.get("/v1/variants/nope", headers=reader)
    assert missing.status_code == 404 and "km_raise_criteria_10pct" in missing.json()["known"]


def test_parameters_on_a_date_with_references(client: TestClient, reader: dict[str, str]) -> None:
    # Income criteria 2024 (gross per month, excl. holiday allowance): 30+ EUR 5,331, under 30
    # EUR 3,909, reduced EUR 2,801 (shared/reference/dutch-rules-and-figures.md, criteria table).
    body = client.get("/v1/parameters", params={"date": "2024-07-01"}, headers=reader).json()
    params = body["parameters"]
    assert body["date"] == "2024-07-01" and body["variant"] == "baseline"
    assert params["knowledge_migrant.salary.age_30_plus"]["value"] == 5331
    assert params["knowledge_migrant.salary.under_30"]["value"] == 3909
    assert params["knowledge_migrant.salary.reduced"]["value"] == 2801
    assert all(p["references"] for p in params.values())

    raised = client.get(
        "/v1/parameters", params={"date": "2024-07-01", "variant": "km_raise_criteria_10pct"}, headers=reader
    ).json()["parameters"]["knowledge_migrant.salary.age_30_plus"]
    assert (
        raised["value"] > 5331
        and raised["changed_by"] == ["km_raise_criteria_10pct"]
        and len(raised["references"]) == 2
    )

    early = client.get("/v1/parameters", params={"date": "1990-01-01"}, headers=reader).json()
    assert early["parameters"] == {} and "knowledge_migrant.salary.age_30_plus" in early["not_defined"]


@pytest.mark.parametrize(
    ("params", "status", "location"),
    [({"date": "July"}, 422, "query.date"), ({"variant": "nope"}, 404, None)],
)
def test_parameters_bad_query(
    client: TestClient, reader: dict[str, str], params: dict[str, str], status: int, location: str | None
) -> None:
    response = client.get("/v1/parameters", params=params, headers=reader)
    assert response.status_code == status
    if location:
        assert response.json()["problems"][0]["location"] == location


def test_rule_with_versions_and_legal_basis(client: TestClient, reader: dict[str, str]) -> None:
    rule = client.get("/v1/rules/KM-SALARY-UNDER30", headers=reader).json()
    assert rule["schemes"] == ["knowledge_migrant"] and rule["legal_basis"]
    assert rule["versions"][0]["source"] == "baseline" and rule["versions"][0]["holds_when"]
    assert "km_uniform_criterion" in rule["removed_by"] or any(v["source"] != "baseline" for v in rule["versions"])
    ebc = client.get("/v1/rules/EBC-SALARY-REDUCED", headers=reader).json()
    assert ebc["versions"][0]["valid_from"] == "2024-06-12"
    missing = client.get("/v1/rules/KM-NOPE", headers=reader)
    assert missing.status_code == 404 and "KM-SPONSOR" in missing.json()["known"]


def test_measures(client: TestClient, reader: dict[str, str], settings: Any) -> None:
    body = client.get("/v1/measures", headers=reader).json()
    assert body == [m.model_dump(mode="json") for m in kmrules.measures(settings.rules_dir)]
    assert "2.11" in {m["section"] for m in body}
