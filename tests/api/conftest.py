"""Fixtures for the API tests: an app on a temporary SQLite database with one key per role,
and a copy of the rules with a small quota (variant `test_small_quota`).

No mocks: the app is `create_app` with the real rule core, ledger and audit log.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_helpers import SMALL_QUOTA_LIMIT, make_rules_copy

from api.app import create_app
from api.settings import Settings
from kmrules.store.database import default_sqlite_url


@pytest.fixture(scope="session")
def rules_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package rules plus `test_small_quota` (limit SMALL_QUOTA_LIMIT, first admissions 2024)."""
    return make_rules_copy(tmp_path_factory.mktemp("rules"), SMALL_QUOTA_LIMIT)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, rules_copy: Path) -> Settings:
    data = tmp_path_factory.mktemp("data")
    return Settings(database_url=default_sqlite_url(data), data_dir=data, rules_dir=rules_copy, key_cache_seconds=0.0)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def keys(client: TestClient) -> dict[str, str]:
    """One key per role, created through the key store (as `kmrules keys create` does)."""
    store = client.app.state.ctx.keys  # type: ignore[attr-defined]
    return {role: store.create(role)[0] for role in ("caseworker", "policy", "admin")}


@pytest.fixture(scope="module")
def auth(keys: dict[str, str]) -> dict[str, dict[str, str]]:
    """Authorization headers per role."""
    return {role: {"Authorization": f"Bearer {key}"} for role, key in keys.items()}
