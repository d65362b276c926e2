"""Helpers shared by the quota tests (imported by name; tests/quota is on sys.path)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from kmrules.quota.definitions import QuotaDefinition
from kmrules.store.database import make_engine

PG_ENV = "KMRULES_TEST_POSTGRES_URL"
WORKER = Path(__file__).with_name("quota_worker.py")


def pg_base_url() -> str:
    """The configured server URL, or skip the test with a visible reason."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set: PostgreSQL tests skipped")
    return url


def schema_url(base: str, schema: str) -> str:
    """The server URL with every connection's search_path set to `schema`."""
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def create_schema(base: str) -> str:
    """Create a fresh schema; fail loudly when the configured server cannot be reached."""
    name = f"kmrules_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
    except Exception as exc:
        pytest.fail(
            f"{PG_ENV} is set but PostgreSQL is unreachable or unusable: {exc}", pytrace=False
        )
    finally:
        admin.dispose()
    return name


def drop_schema(base: str, name: str) -> None:
    admin = make_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    finally:
        admin.dispose()


def unique(prefix: str) -> str:
    """An id no other test (or repetition) uses, so tests can share one database."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def build_defn(**overrides: object) -> QuotaDefinition:
    """A definition with a fresh id; keyword arguments override the defaults."""
    fields: dict[str, object] = {
        "id": unique("km_quota"),
        "title": "Knowledge-migrant quota (test)",
        "scheme": "knowledge_migrant",
        "kind": "quota",
        "limit": 50,
        "period": "year",
        "seed_section": "2.11",
        "legal_basis": [{"seed": "§2.11"}],
    }
    fields.update(overrides)
    return QuotaDefinition.model_validate(fields)
