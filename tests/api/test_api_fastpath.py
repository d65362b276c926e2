"""POST /v1/decisions goes straight to its endpoint (api/fastpath.py): the same answers as the
ordinary FastAPI route for every kind of request, without FastAPI's route handling."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.app import create_app
from api.examples import DECISION_REQUEST, DECISION_REQUEST_REFUSED
from api.fastpath import DirectRouteMiddleware, route_of
from api.routes_decisions import router as decisions_router
from api.settings import Settings

VOLATILE = {"id", "created_at", "request_id"}


@pytest.fixture
def caseworker(auth: dict[str, dict[str, str]]) -> dict[str, str]:
    return auth["caseworker"]


@pytest.fixture(scope="module")
def ordinary(settings: Settings, keys: dict[str, str]) -> Iterator[TestClient]:
    """The same app on the same database without the direct route: FastAPI's own handling.

    The middleware stack is built on the first request, so dropping the entry now is enough."""
    app = create_app(settings)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not DirectRouteMiddleware]
    with TestClient(app) as test_client:
        yield test_client


def _answer(response: Any) -> tuple[int, Any, str | None]:
    body = response.json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in VOLATILE}
    return response.status_code, body, response.headers.get("www-authenticate")


def _with(**changes: Any) -> dict[str, Any]:
    request = copy.deepcopy(DECISION_REQUEST)
    request.update(changes)
    return request


CASES: dict[str, tuple[str, bytes | None, dict[str, str]]] = {
    # name: (role or "" for no key, body or None for the example, extra headers)
    "granted": ("caseworker", json.dumps(DECISION_REQUEST).encode(), {}),
    "refused": ("caseworker", json.dumps(DECISION_REQUEST_REFUSED).encode(), {}),
    "no key": ("", json.dumps(DECISION_REQUEST).encode(), {}),
    "wrong role": ("policy", json.dumps(DECISION_REQUEST).encode(), {}),
    "unknown key": ("nobody", json.dumps(DECISION_REQUEST).encode(), {}),
    "not json": ("caseworker", b"{not json", {}),
    "empty body": ("caseworker", b"", {}),
    "bad field": ("caseworker", json.dumps(_with(case={"application_date": "2023-13-01"})).encode(), {}),
    "unknown variant": ("caseworker", json.dumps(_with(variant="no_such_variant")).encode(), {}),
    "bad idempotency key": ("caseworker", json.dumps(DECISION_REQUEST).encode(), {"Idempotency-Key": "has space"}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_same_answer_as_the_ordinary_route(
    name: str, client: TestClient, ordinary: TestClient, keys: dict[str, str]
) -> None:
    role, body, extra = CASES[name]
    headers = {"Content-Type": "application/json", **extra}
    if role:
        headers["Authorization"] = f"Bearer {keys.get(role, 'not-a-key-of-anyone')}"
    fast = client.post("/v1/decisions", content=body, headers=headers)
    slow = ordinary.post("/v1/decisions", content=body, headers=headers)
    assert _answer(fast) == _answer(slow)
    assert fast.headers["x-request-id"]


def test_the_route_machinery_is_skipped(
    client: TestClient, caseworker: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    handled: list[str] = []
    original = APIRoute.handle

    async def counting(self: APIRoute, scope: Any, receive: Any, send: Any) -> None:
        handled.append(self.path)
        await original(self, scope, receive, send)

    monkeypatch.setattr(APIRoute, "handle", counting)
    assert client.post("/v1/decisions", json=DECISION_REQUEST, headers=caseworker).status_code == 200
    assert handled == []
    assert client.get("/v1/variants", headers=caseworker).status_code == 200
    assert handled == ["/v1/variants"]


def test_a_query_string_takes_the_ordinary_route(client: TestClient, caseworker: dict[str, str]) -> None:
    response = client.post("/v1/decisions?dry=1", json=DECISION_REQUEST, headers=caseworker)
    assert response.status_code == 422
    assert [p["location"] for p in response.json()["problems"]] == ["query.dry"]


def test_other_methods_and_paths_are_untouched(client: TestClient, caseworker: dict[str, str]) -> None:
    assert client.get("/v1/decisions", headers=caseworker).status_code == 405
    redirect = client.post("/v1/decisions/", json=DECISION_REQUEST, headers=caseworker, follow_redirects=False)
    assert (redirect.status_code, redirect.headers["location"]) == (307, "http://testserver/v1/decisions")


def test_a_bug_is_a_typed_500_with_its_access_line(
    settings: Settings, keys: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("a bug, with case data 1990-01-01 in its message")

    object.__setattr__(app.state.ctx.service, "decide", broken)
    with TestClient(app, raise_server_exceptions=False) as test_client, caplog.at_level(logging.INFO):
        response = test_client.post(
            "/v1/decisions", json=DECISION_REQUEST, headers={"Authorization": f"Bearer {keys['caseworker']}"}
        )
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error"
    assert "1990-01-01" not in response.text
    access = [r.__dict__ for r in caplog.records if r.name == "kmrules.api.access"]
    assert [(x["route"], x["status"], x["role"], x["request_id"]) for x in access] == [
        ("/v1/decisions", 500, "caseworker", body["request_id"])
    ]


def test_access_log_names_the_route_and_role(
    client: TestClient, caseworker: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="kmrules.api.access"):
        assert client.post("/v1/decisions", json=DECISION_REQUEST, headers=caseworker).status_code == 200
    lines = [r.__dict__ for r in caplog.records if r.name == "kmrules.api.access"]
    assert [(x["method"], x["route"], x["status"], x["role"]) for x in lines] == [
        ("POST", "/v1/decisions", 200, "caseworker")
    ]


def test_a_missing_route_is_a_start_up_error() -> None:
    with pytest.raises(RuntimeError, match="expected one route PUT /v1/decisions, found 0"):
        route_of(decisions_router, "PUT", "/v1/decisions")
