"""Shared by the decision-service, quota CLI and simulation tests: a small rules directory with
test quotas, requests, fresh databases, and (run as a script) a worker for the SIGKILL test.

service_helpers.py hang URL RULES_DIR REQUEST_JSON KEY   decide; stall inside the audit write
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from kmrules.rulebook import DEFAULT_RULES_DIR
from kmrules.store.tables import audit_log, quota_places

sys.path.insert(0, str(Path(__file__).resolve().parent / "quota"))
from quota_helpers import build_defn, create_schema, drop_schema, pg_base_url, schema_url, unique

__all__ = ["HERE", "build_defn", "count", "fresh_database", "km_request", "make_rules_dir", "unique"]

HERE = Path(__file__).resolve()

TEST_VARIANTS = {
    "test_quota_50": {"id": "q50", "kind": "quota", "limit": 50},
    "test_quota_3": {"id": "q3", "kind": "quota", "limit": 3},
    "test_quota_10": {"id": "q10", "kind": "quota", "limit": 10},
    "test_target_2": {"id": "t2", "kind": "target", "limit": 2},
    "test_quota_ict_1": {"id": "q_ict_1", "kind": "quota", "limit": 1, "segment": {"job.sector": "ict"}},
    "test_quota_2024_q": {
        "id": "q_quarterly",
        "kind": "quota",
        "limit": 8,
        "period": "quarter",
        "valid_from": "2024-01-01",
        "valid_until": "2024-12-31",
    },
}


def make_rules_dir(root: Path) -> Path:
    """The package's facts, parameters and schemes plus one variant per test quota."""
    rules = root / "rules"
    rules.mkdir(parents=True)
    shutil.copy(DEFAULT_RULES_DIR / "facts.yaml", rules / "facts.yaml")
    shutil.copytree(DEFAULT_RULES_DIR / "parameters", rules / "parameters")
    shutil.copytree(DEFAULT_RULES_DIR / "schemes", rules / "schemes")
    (rules / "variants").mkdir()
    for variant_id, quota in TEST_VARIANTS.items():
        variant = {
            "variant": {
                "id": variant_id,
                "title": f"Test quota {quota['id']}",
                "description": "A small quota for the tests.",
                "seed_sections": ["2.11"],
                "legal_basis": [{"seed": "§2.11"}],
            },
            "quotas": [
                {
                    "title": f"Test {quota['kind']} {quota['id']}",
                    "scheme": "knowledge_migrant",
                    "period": "year",
                    "seed_section": "2.11",
                    "legal_basis": [{"seed": "§2.11"}],
                    **quota,
                }
            ],
        }
        (rules / "variants" / f"{variant_id}.yaml").write_text(json.dumps(variant, indent=1))
    return rules


BASE_CASE: dict[str, Any] = {
    "application_date": "2024-03-15",
    "application_kind": "first",
    "applicant": {
        "birth_date": "1991-01-10",
        "nationality": "IN",
        "graduation": {"date": "2014-07-01", "country": "IN", "level": "master", "top200": False},
        "search_year_permit": {"held": False},
    },
    "employer": {"recognised_sponsor": True},
    "job": {
        "gross_monthly_salary": 6000,
        "position": "regular",
        "sector": "ict",
        "occupation": "software engineer",
        "contract_months": 24,
        "market_conform": True,
    },
}


def km_request(
    variant: Any = "test_quota_3",
    *,
    case_id: str | None = None,
    on: str = "2024-03-15",
    salary: float = 6000,
    sector: str = "ict",
    kind: str = "first",
    **extra: Any,
) -> dict[str, Any]:
    """A knowledge-migrant request the criteria grant (aged 33, salary above 5,331 of 2024)."""
    case = copy.deepcopy(BASE_CASE)
    case["application_date"] = on
    case["application_kind"] = kind
    case["job"]["gross_monthly_salary"] = salary
    case["job"]["sector"] = sector
    request: dict[str, Any] = {"scheme": "knowledge_migrant", "variant": variant, "case": case, **extra}
    if case_id is not None:
        request["case_id"] = case_id
    return request


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database: a new SQLite file, or a new PostgreSQL schema (dropped after)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'service.sqlite'}"
        return
    base = pg_base_url()  # skips visibly without KMRULES_TEST_POSTGRES_URL
    name = create_schema(base)
    try:
        yield schema_url(base, name)
    finally:
        drop_schema(base, name)


def count(engine: Engine, *, case_id: str | None = None, quota_id: str | None = None, audit: bool = False) -> int:
    """Active places (of a case and/or quota), or audit rows of a case with `audit=True`."""
    with engine.connect() as conn:
        return _count(conn, case_id=case_id, quota_id=quota_id, audit=audit)


def _count(conn: Connection, *, case_id: str | None, quota_id: str | None, audit: bool) -> int:
    if audit:
        stmt = select(func.count()).select_from(audit_log)
        if case_id is not None:
            stmt = stmt.where(audit_log.c.case_id == case_id)
        return int(conn.execute(stmt).scalar_one())
    stmt = select(func.count()).select_from(quota_places).where(quota_places.c.released_at.is_(None))
    if case_id is not None:
        stmt = stmt.where(quota_places.c.case_id == case_id)
    if quota_id is not None:
        stmt = stmt.where(quota_places.c.quota_id == quota_id)
    return int(conn.execute(stmt).scalar_one())


def _hang(url: str, rules_dir: str, request_json: str, key: str) -> None:
    """Decide, and stall inside the transaction right after the audit row is written."""
    import kmrules.service as service_module
    from kmrules.store.audit import append_audit as real

    def stall(conn: Connection, **kwargs: Any) -> Any:
        record = real(conn, **kwargs)
        print("IN_TX", flush=True)
        time.sleep(120)
        return record

    vars(service_module)["append_audit"] = stall  # the service looks the name up at call time
    service = service_module.DecisionService(database_url=url, rules_dir=Path(rules_dir))
    service.decide(json.loads(request_json), idempotency_key=key)
    print("COMMITTED", flush=True)  # the test kills us before this


if __name__ == "__main__":
    if sys.argv[1] != "hang":
        raise SystemExit(f"unknown mode {sys.argv[1]}")
    _hang(*sys.argv[2:6])
