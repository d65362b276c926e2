"""Fixtures for the quota and store tests: real SQLite and PostgreSQL databases, no mocks.

PostgreSQL runs when KMRULES_TEST_POSTGRES_URL is set (and then fails loudly if the server is
unreachable); the session works in its own schema, dropped at the end.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from kmrules.store.database import make_engine, migrate

# The test modules import `quota_helpers`; keep that working under --import-mode=importlib too.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from quota_helpers import create_schema, drop_schema, pg_base_url, schema_url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ledger") / "data" / "kmrules.sqlite"
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url, pool_size=20, max_overflow=20)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    base = pg_base_url()
    name = create_schema(base)
    yield schema_url(base, name)
    drop_schema(base, name)


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url, pool_size=20, max_overflow=20)
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def engine(backend: str, request: pytest.FixtureRequest) -> Engine:
    """The migrated session database of the backend under test."""
    found = request.getfixturevalue("sqlite_engine" if backend == "sqlite" else "pg_engine")
    assert isinstance(found, Engine)
    return found


@pytest.fixture(scope="session")
def db_url(backend: str, engine: Engine, request: pytest.FixtureRequest) -> str:
    """The URL of that database, for subprocesses."""
    return str(request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url"))
