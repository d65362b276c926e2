"""POST /v1/decisions, GET /v1/decisions/{id}, POST /v1/decisions/compare: answers and errors."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import SMALL_QUOTA, SMALL_QUOTA_LIMIT, granted_request
from fastapi.testclient import TestClient

import kmrules
from api.app import create_app
from api.examples import COMPARE_REQUEST, COMPARE_WHAT_IF, DECISION_REQUEST, DECISION_REQUEST_REFUSED
from kmrules.store.database import default_sqlite_url

PINNED_KEYS = {"outcome", "scheme", "variant", "findings", "missing", "amounts", "receipt"}


@pytest.fixture
def caseworker(auth: dict[str, dict[str, str]]) -> dict[str, str]:
    return auth["caseworker"]


def test_decision_is_the_rule_core_answer_plus_id(
    client: TestClient, caseworker: dict[str, str], settings: Any
) -> None:
    response = client.post("/v1/decisions", json=DECISION_REQUEST, headers=caseworker)
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= PINNED_KEYS and body["id"] and body["idempotent_replay"] is False
    expected = kmrules.decide(DECISION_REQUEST, rules_dir=settings.rules_dir).model_dump(mode="json")
    assert body["outcome"] == expected["outcome"] == "granted"
    assert body["findings"] == expected["findings"]
    assert response.headers["x-request-id"]

    again = client.get(f"/v1/decisions/{body['id']}", headers=caseworker)
    assert again.status_code == 200
    assert again.json() == body

    refused = client.post("/v1/decisions", json=DECISION_REQUEST_REFUSED, headers=caseworker).json()
    assert refused["outcome"] == "refused"
    assert any(f["rule"] == "KM-SALARY-30PLUS" and f["result"] == "fail" for f in refused["findings"])


def test_unknown_decision_id_is_404(client: TestClient, caseworker: dict[str, str]) -> None:
    response = client.get(f"/v1/decisions/{uuid.uuid4()}", headers=caseworker)
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_decision"


def test_idempotency_key_replays_and_takes_one_place(client: TestClient, auth: dict[str, dict[str, str]]) -> None:
    key = f"idem-{uuid.uuid4()}"
    headers = {**auth["caseworker"], "Idempotency-Key": key}
    body = granted_request(1, case_id=f"case-{uuid.uuid4()}")
    first = client.post("/v1/decisions", json=body, headers=headers)
    second = client.post("/v1/decisions", json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["idempotent_replay"] is True and second.headers["idempotent-replayed"] == "true"
    assert [q["result"] for q in first.json()["quota"]] == ["place_taken"]
    other = client.post("/v1/decisions", json=granted_request(2), headers=headers)
    assert other.status_code == 409 and other.json()["error"] == "idempotency_conflict"
    release = client.post(f"/v1/quotas/{SMALL_QUOTA}/release", json={"case_id": body["case_id"]}, headers=auth["admin"])
    assert release.status_code == 200 and len(release.json()["released"]) == 1


@pytest.mark.parametrize("bad_key", ["", "x" * 201, "bad key"])
def test_bad_idempotency_key_is_422(client: TestClient, caseworker: dict[str, str], bad_key: str) -> None:
    response = client.post("/v1/decisions", json=DECISION_REQUEST, headers={**caseworker, "Idempotency-Key": bad_key})
    assert response.status_code == 422
    assert response.json()["problems"][0]["location"] == "header.Idempotency-Key"


def _with(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(DECISION_REQUEST)
    node = body
    *parents, last = path.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    return body


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (_with("case.job.gross_monthly_salary", "a lot"), "case.job.gross_monthly_salary"),
        (_with("case.job.gross_monthly_salary", -1), "case.job.gross_monthly_salary"),
        (_with("case.applicant.birth_date", "10-01-1991"), "case.applicant.birth_date"),
        (_with("case.applicant.nationality", "India"), "case.applicant.nationality"),
        (_with("case.job.shoe_size", 44), "case.job.shoe_size"),
        (_with("case.application_kind", "renewal"), "case.application_kind"),
        ({"scheme": "knowledge_migrant"}, "case"),
        ({**DECISION_REQUEST, "colour": "blue"}, "colour"),
        ([DECISION_REQUEST], "(body)"),
    ],
    ids=[
        "salary-text",
        "salary-negative",
        "date-format",
        "nationality",
        "unknown-field",
        "enum",
        "no-case",
        "extra-top",
        "array",
    ],
)
def test_malformed_body_names_field_path(
    client: TestClient, caseworker: dict[str, str], body: Any, location: str
) -> None:
    response = client.post("/v1/decisions", json=body, headers=caseworker)
    assert response.status_code == 422, response.text
    problems = response.json()["problems"]
    assert location in [p["location"] for p in problems]
    assert all(p["reason"] for p in problems)


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"[" * 100_000, b'{"scheme": NaN}'])
def test_not_json_is_422(client: TestClient, caseworker: dict[str, str], raw: bytes) -> None:
    response = client.post("/v1/decisions", content=raw, headers={**caseworker, "Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


def test_unknown_scheme_and_variant_list_the_known_ones(client: TestClient, caseworker: dict[str, str]) -> None:
    scheme = client.post("/v1/decisions", json={**DECISION_REQUEST, "scheme": "golden_visa"}, headers=caseworker)
    assert scheme.status_code == 404
    assert scheme.json()["error"] == "unknown_scheme" and "knowledge_migrant" in scheme.json()["known"]
    variant = client.post("/v1/decisions", json={**DECISION_REQUEST, "variant": "nope"}, headers=caseworker)
    assert variant.status_code == 404
    assert variant.json()["error"] == "unknown_variant" and SMALL_QUOTA in variant.json()["known"]


def test_conflicting_variants_are_409(client: TestClient, caseworker: dict[str, str]) -> None:
    body = {**DECISION_REQUEST, "variant": ["km_raise_criteria_10pct", "km_under30_avg_wage_2025"]}
    response = client.post("/v1/decisions", json=body, headers=caseworker)
    assert response.status_code == 409 and response.json()["error"] == "variant_conflict"


def test_date_without_parameters_is_422(client: TestClient, caseworker: dict[str, str]) -> None:
    response = client.post("/v1/decisions", json=_with("case.application_date", "1990-01-01"), headers=caseworker)
    assert response.status_code == 422
    assert response.json()["error"] == "parameter_not_defined"


def test_body_size_limit_is_413(client: TestClient, caseworker: dict[str, str], settings: Any) -> None:
    big = {**DECISION_REQUEST, "case_id": "x" * (settings.max_body_bytes + 1)}
    response = client.post("/v1/decisions", json=big, headers=caseworker)
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit acts while streaming
        yield b'{"scheme": "knowledge_migrant", "case_id": "'
        for _ in range(settings.max_body_bytes // 1024 + 2):
            yield b"x" * 1024
        yield b'"}'

    streamed = client.post("/v1/decisions", content=chunks(), headers=caseworker)
    assert streamed.status_code == 413


def test_quota_fills_then_refuses_and_dry_run_takes_nothing(
    client: TestClient, auth: dict[str, dict[str, str]]
) -> None:
    headers = auth["caseworker"]
    status = client.get(f"/v1/quotas/{SMALL_QUOTA}", headers=headers).json()
    used_before = status["usage"][0]["used"] if status["usage"] else 0
    dry = client.post("/v1/decisions", json={**granted_request(500), "dry_run": True}, headers=headers).json()
    assert dry["outcome"] == "granted" and dry["quota"][0]["result"] == "dry_run"
    results = [
        client.post("/v1/decisions", json=granted_request(1000 + i), headers=headers).json()
        for i in range(SMALL_QUOTA_LIMIT - used_before + 3)
    ]
    taken = [r for r in results if r["quota"] and r["quota"][0]["result"] == "place_taken"]
    full = [r for r in results if r["quota"] and r["quota"][0]["result"] == "full"]
    assert len(taken) == SMALL_QUOTA_LIMIT - used_before and len(full) == 3
    assert all(r["outcome"] == "refused" for r in full)
    quota = client.get(f"/v1/quotas/{SMALL_QUOTA}", headers=headers).json()
    assert quota["usage"][0]["used"] == SMALL_QUOTA_LIMIT and quota["usage"][0]["remaining"] == 0
    listed = {q["id"]: q for q in client.get("/v1/quotas", headers=headers).json()}
    assert (
        listed[SMALL_QUOTA]["definition"]["limit"] == SMALL_QUOTA_LIMIT
        and listed[SMALL_QUOTA]["variant"] == SMALL_QUOTA
    )

    case_id = taken[0]["receipt"]["ledger"]["case_id"]
    released = client.post(f"/v1/quotas/{SMALL_QUOTA}/release", json={"case_id": case_id}, headers=auth["admin"])
    assert released.status_code == 200 and released.json()["released"][0]["case_id"] == case_id
    again = client.post(f"/v1/quotas/{SMALL_QUOTA}/release", json={"case_id": case_id}, headers=auth["admin"])
    assert again.status_code == 404 and again.json()["error"] == "nothing_held"
    unknown = client.post("/v1/quotas/nope/release", json={"case_id": case_id}, headers=auth["admin"])
    assert unknown.status_code == 404 and SMALL_QUOTA in unknown.json()["known"]
    empty = client.post(f"/v1/quotas/{SMALL_QUOTA}/release", json={"case_id": ""}, headers=auth["admin"])
    assert empty.status_code == 422 and empty.json()["problems"][0]["location"] == "case_id"
    assert client.get("/v1/quotas/nope", headers=headers).status_code == 404


def test_compare(client: TestClient, auth: dict[str, dict[str, str]], settings: Any) -> None:
    response = client.post("/v1/decisions/compare", json=COMPARE_WHAT_IF, headers=auth["policy"])
    assert response.status_code == 200, response.text
    body = response.json()
    request = {k: v for k, v in COMPARE_WHAT_IF.items() if k != "variants"}
    expected = kmrules.compare(request, COMPARE_WHAT_IF["variants"], rules_dir=settings.rules_dir).model_dump(
        mode="json"
    )
    assert body == expected
    assert [d["rule"] for d in body["differences"]] == ["outcome", "KM-SALARY-30PLUS"]


@pytest.mark.parametrize(
    ("change", "location"),
    [
        ({"variants": []}, "variants"),
        ({"variants": ["baseline"] * 21}, "variants"),
        ({"variants": "baseline"}, "variants"),
        ({"variant": "baseline"}, "variant"),
    ],
    ids=["empty", "too-many", "not-a-list", "singular-variant"],
)
def test_compare_bounds(
    client: TestClient, auth: dict[str, dict[str, str]], change: dict[str, Any], location: str
) -> None:
    response = client.post("/v1/decisions/compare", json={**COMPARE_REQUEST, **change}, headers=auth["policy"])
    assert response.status_code == 422
    assert response.json()["problems"][0]["location"] == location


def test_compare_unknown_variant_is_404(client: TestClient, auth: dict[str, dict[str, str]]) -> None:
    response = client.post(
        "/v1/decisions/compare", json={**COMPARE_REQUEST, "variants": ["nope"]}, headers=auth["policy"]
    )
    assert response.status_code == 404 and "baseline" in response.json()["known"]


def test_extreme_dates_are_a_client_error(client: TestClient, caseworker: dict[str, str]) -> None:
    body = _with("case.applicant.graduation.date", "9999-12-31")
    body["case"]["application_date"] = "2024-03-01"
    response = client.post("/v1/decisions", json=body, headers=caseworker)
    assert response.status_code == 422
    assert response.json()["problems"][0]["location"] == "case.applicant.graduation.date"


def test_unknown_query_parameter_is_a_clear_422(client: TestClient, caseworker: dict[str, str]) -> None:
    response = client.get("/v1/parameters?dat=2024-01-01", headers=caseworker)
    assert response.status_code == 422
    assert response.json()["problems"][0]["location"] == "query.dat"
    assert client.get("/v1/parameters?date=2024-01-01", headers=caseworker).status_code == 200


def test_the_answer_is_the_audited_decision(client: TestClient, caseworker: dict[str, str]) -> None:
    """The route answers the audit row's decision text plus the envelope, never a re-rendering."""
    body = client.post("/v1/decisions", json=DECISION_REQUEST_REFUSED, headers=caseworker).json()
    recorded = client.app.state.ctx.service.get_decision(body["id"])  # type: ignore[attr-defined]
    envelope = {"id", "created_at", "idempotent_replay"}
    assert {k: v for k, v in body.items() if k not in envelope} == json.loads(recorded.decision_json)
    assert body["counterfactuals"]["variants_that_grant"] == recorded.decision.counterfactuals["variants_that_grant"]


def test_decisions_in_the_thread_pool_when_configured(
    settings: Any, tmp_path: Path, auth: dict[str, dict[str, str]], keys: dict[str, str]
) -> None:
    """write_concurrency N > 0 runs decisions in the thread pool: same answers as on the loop."""
    threaded = settings.with_(write_concurrency=2, data_dir=tmp_path, database_url=default_sqlite_url(tmp_path))
    with TestClient(create_app(threaded)) as other:
        key = other.app.state.ctx.keys.create("caseworker")[0]  # type: ignore[attr-defined]
        headers = {"Authorization": f"Bearer {key}"}
        answers = [
            other.post("/v1/decisions", json=b, headers=headers) for b in (DECISION_REQUEST, DECISION_REQUEST_REFUSED)
        ]
    assert [a.status_code for a in answers] == [200, 200]
    assert [a.json()["outcome"] for a in answers] == ["granted", "refused"]


def test_decisions_take_only_a_bearer_key(client: TestClient, keys: dict[str, str]) -> None:
    for header in (f"Basic {keys['caseworker']}", keys["caseworker"], "Bearer", "Bearer "):
        response = client.post("/v1/decisions", json=DECISION_REQUEST, headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.json()["error"] == "unauthenticated"
    lower = client.post(
        "/v1/decisions", json=DECISION_REQUEST, headers={"Authorization": f"bearer {keys['caseworker']}"}
    )
    assert lower.status_code == 200  # the scheme name is case-insensitive, as HTTPBearer reads it


def test_decision_route_documents_its_key_and_header(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/decisions"]["post"]
    assert operation["security"] == [{"HTTPBearer": []}]
    (header,) = [p for p in operation["parameters"] if p["in"] == "header"]
    assert header["name"] == "Idempotency-Key" and header["schema"]["maxLength"] == 200
