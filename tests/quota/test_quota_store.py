"""Engines, migrations and the append-only audit log on real databases."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from quota_helpers import WORKER, create_schema, drop_schema, pg_base_url, schema_url, unique
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from kmrules.quota.ledger import Ledger
from kmrules.store.audit import (
    append_audit,
    find_audit_by_idempotency_key,
    get_audit,
    list_audit,
)
from kmrules.store.database import VERSION_TABLE, default_sqlite_url, make_engine, migrate
from kmrules.store.errors import DuplicateIdempotencyKeyError, UnsupportedDatabaseError
from kmrules.store.keys import create_api_key, find_api_key, hash_api_key, revoke_api_key
from kmrules.store.tables import audit_log, metadata, quota_counters, quota_places

TABLES = {"quota_counters", "quota_places", "audit_log", "api_keys", VERSION_TABLE}


def test_postgres_urls_use_psycopg3() -> None:
    for url in ("postgresql://u@h/db", "postgres://u@h/db", "postgresql+psycopg://u@h/db"):
        engine = make_engine(url)
        assert engine.url.drivername == "postgresql+psycopg"
        engine.dispose()
    with pytest.raises(UnsupportedDatabaseError):
        make_engine("postgresql+asyncpg://u@h/db")
    with pytest.raises(UnsupportedDatabaseError):
        make_engine("mysql://u@h/db")


def test_sqlite_engine_creates_its_directory_and_sets_pragmas(tmp_path: Path) -> None:
    url = default_sqlite_url(tmp_path / "nested" / "data")
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 1000
    assert (tmp_path / "nested" / "data" / "kmrules.sqlite").exists()
    engine.dispose()


def test_migrate_is_idempotent_and_creates_every_table(engine: Engine) -> None:
    migrate(engine)
    migrate(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all() == [("0001",)]


def test_migration_matches_the_table_definitions(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(context, metadata) == []
    checks = {c["name"] for c in inspect(engine).get_check_constraints("quota_counters")}
    assert checks == {"ck_quota_counters_used_not_negative"}
    indexes = {i["name"]: i for i in inspect(engine).get_indexes("quota_places")}
    assert indexes["uq_quota_places_active_place"]["unique"]


def test_audit_log_is_append_only(engine: Engine) -> None:
    case = unique("case")
    with engine.begin() as conn:
        record = append_audit(
            conn,
            kind="decision",
            request_json='{"a": 1}',
            response_json='{"outcome": "granted"}',
            actor_role="caseworker",
            case_id=case,
            idempotency_key=unique("idem"),
        )
    with engine.connect() as conn:
        assert get_audit(conn, record.id) == record
        assert list_audit(conn, case_id=case) == [record]
        assert record.idempotency_key is not None
        assert find_audit_by_idempotency_key(conn, record.idempotency_key) == record
    for statement in (
        audit_log.update().where(audit_log.c.id == record.id).values(kind="tampered"),
        audit_log.delete().where(audit_log.c.id == record.id),
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(statement)
    with engine.connect() as conn:
        assert get_audit(conn, record.id) == record


def test_idempotency_key_is_unique(engine: Engine) -> None:
    key = unique("idem")
    row = {"kind": "decision", "request_json": "{}", "response_json": "{}", "actor_role": "x"}
    with engine.begin() as conn:
        append_audit(conn, idempotency_key=key, **row)
    with pytest.raises(DuplicateIdempotencyKeyError), engine.begin() as conn:
        append_audit(conn, idempotency_key=key, **row)
    with engine.begin() as conn:  # no key: any number of rows
        append_audit(conn, **row)
        append_audit(conn, **row)


def test_api_keys_store_only_a_hash(engine: Engine) -> None:
    with engine.begin() as conn:
        plain, record = create_api_key(conn, "caseworker")
    assert record.key_hash == hash_api_key(plain) and len(record.key_hash) == 64
    assert plain not in record.model_dump_json()
    with engine.begin() as conn:
        found = find_api_key(conn, plain)
        assert found is not None and found.active and found.role == "caseworker"
        assert find_api_key(conn, plain + "x") is None
        assert revoke_api_key(conn, record.id)
        assert not revoke_api_key(conn, record.id)
    with engine.connect() as conn:
        revoked = find_api_key(conn, plain)
        assert revoked is not None and not revoked.active


@pytest.fixture
def fresh_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database (a new SQLite file, or a new PostgreSQL schema)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.sqlite'}"
        return
    base = pg_base_url()
    name = create_schema(base)
    yield schema_url(base, name)
    drop_schema(base, name)


def test_two_processes_migrate_at_once(fresh_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "migrate", fresh_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert out.strip() == "OK"
    engine = make_engine(fresh_url)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            versions = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
        assert versions == [("0001",)]
    finally:
        engine.dispose()


def test_partial_unique_indexes_back_up_the_ledger(engine: Engine) -> None:
    """Even a write that bypasses the ledger cannot give one case or one place number twice."""
    quota = unique("q")
    now = datetime.now(UTC)
    place = {"quota_id": quota, "period_key": "2024", "reserved_at": now}
    with engine.begin() as conn:
        conn.execute(quota_counters.insert().values(quota_id=quota, period_key="2024", used=1))
        conn.execute(quota_places.insert().values(case_id="a", place_no=1, **place))
    for clash in ({"case_id": "a", "place_no": 2}, {"case_id": "b", "place_no": 1}):
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(quota_places.insert().values(**clash, **place))
    with engine.begin() as conn:  # once released, both may be used again
        conn.execute(
            quota_places.update().where(quota_places.c.quota_id == quota).values(released_at=now)
        )
        conn.execute(quota_places.insert().values(case_id="a", place_no=1, **place))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            quota_counters.update().where(quota_counters.c.quota_id == quota).values(used=-1)
        )


def test_verify_reports_a_counter_that_disagrees_with_the_places(engine: Engine) -> None:
    quota = unique("q")
    with engine.begin() as conn:
        conn.execute(quota_counters.insert().values(quota_id=quota, period_key="2024", used=2))
    assert Ledger(engine).verify([quota]) == [f"{quota} 2024: counter says 2, active places 0"]
    with engine.begin() as conn:  # leave the shared database consistent
        conn.execute(
            quota_counters.update().where(quota_counters.c.quota_id == quota).values(used=0)
        )
    assert Ledger(engine).verify([quota]) == []
