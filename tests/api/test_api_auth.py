"""Keys and roles: 401 without or with a bad key, 403 with the wrong role, keys stored hashed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from api.examples import COMPARE_REQUEST, DECISION_REQUEST, RELEASE_REQUEST
from api.settings import Settings
from kmrules.cli import app as cli_app
from kmrules.cli_extra import register
from kmrules.store.database import make_engine
from kmrules.store.keys import hash_api_key
from kmrules.store.tables import api_keys

# (method, path, json body, roles that may)
ENDPOINTS = [
    ("POST", "/v1/decisions", DECISION_REQUEST, {"caseworker", "admin"}),
    ("POST", "/v1/decisions/compare", COMPARE_REQUEST, {"policy", "admin"}),
    ("GET", "/v1/schemes", None, {"caseworker", "policy", "admin"}),
    ("GET", "/v1/variants", None, {"caseworker", "policy", "admin"}),
    ("GET", "/v1/parameters?date=2024-07-01", None, {"caseworker", "policy", "admin"}),
    ("GET", "/v1/rules/KM-SPONSOR", None, {"caseworker", "policy", "admin"}),
    ("GET", "/v1/measures", None, {"caseworker", "policy", "admin"}),
    ("GET", "/v1/quotas", None, {"caseworker", "policy", "admin"}),
    ("POST", "/v1/quotas/test_small_quota/release", RELEASE_REQUEST, {"admin"}),
    ("GET", "/v1/keys", None, {"admin"}),
]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_roles(
    client: TestClient, auth: dict[str, dict[str, str]], method: str, path: str, body: object, allowed: set[str]
) -> None:
    anonymous = client.request(method, path, json=body)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json()["error"] == "unauthenticated"
    assert client.request(method, path, json=body, headers={"Authorization": "Bearer not-a-key"}).status_code == 401
    for role, headers in auth.items():
        response = client.request(method, path, json=body, headers=headers)
        if role in allowed:
            # release of a case holding nothing is a 404, but it got past the role check
            assert response.status_code in (200, 404), (role, response.text)
            payload = response.json()
            assert not isinstance(payload, dict) or payload.get("error") != "forbidden"
        else:
            assert response.status_code == 403, (role, response.text)
            assert response.json()["error"] == "forbidden"


def test_healthz_and_openapi_need_no_key(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/openapi.json").status_code == 200


def test_basic_auth_scheme_is_not_a_key(client: TestClient, keys: dict[str, str]) -> None:
    response = client.get("/v1/schemes", headers={"Authorization": f"Basic {keys['admin']}"})
    assert response.status_code == 401


def test_keys_stored_hashed_and_revocable(
    client: TestClient, settings: Settings, auth: dict[str, dict[str, str]]
) -> None:
    created = client.post("/v1/keys", json={"role": "policy"}, headers=auth["admin"])
    assert created.status_code == 201
    key, key_id = created.json()["key"], created.json()["id"]
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        stored = conn.execute(select(api_keys.c.key_hash).where(api_keys.c.id == key_id)).scalar_one()
        everything = " ".join(str(v) for row in conn.execute(select(api_keys)) for v in row)
    engine.dispose()
    assert stored == hash_api_key(key) and key not in everything
    mine = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/variants", headers=mine).status_code == 200
    listed = client.get("/v1/keys", headers=auth["admin"]).json()
    assert all("key" not in item and "key_hash" not in item for item in listed)
    assert client.post(f"/v1/keys/{key_id}/revoke", headers=auth["admin"]).json()["revoked_at"] is not None
    assert client.get("/v1/variants", headers=mine).status_code == 401  # key cache is 0 s in these tests
    assert client.post("/v1/keys/no-such-key/revoke", headers=auth["admin"]).status_code == 404


def test_cli_keys_create_prints_key_alone_on_last_line(settings: Settings, client: TestClient) -> None:
    register(cli_app)
    runner = CliRunner()
    result = runner.invoke(cli_app, ["keys", "create", "--role", "caseworker", "--database-url", settings.database_url])
    assert result.exit_code == 0, result.output
    key = result.output.rstrip("\n").splitlines()[-1]
    assert key == key.strip() and len(key) >= 32 and " " not in key
    assert (
        client.post("/v1/decisions", json=DECISION_REQUEST, headers={"Authorization": f"Bearer {key}"}).status_code
        == 200
    )
    bad = runner.invoke(cli_app, ["keys", "create", "--role", "root", "--database-url", settings.database_url])
    assert bad.exit_code != 0
    listed = runner.invoke(cli_app, ["keys", "list", "--database-url", settings.database_url])
    assert listed.exit_code == 0 and key not in listed.output and "caseworker" in listed.output
