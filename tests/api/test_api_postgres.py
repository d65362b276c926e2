"""Two `kmrules serve` processes sharing one PostgreSQL database under concurrent load never
exceed a quota. Runs when KMRULES_TEST_POSTGRES_URL is set (fails loudly if it is unreachable);
skipped with a visible reason otherwise."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import (
    SMALL_QUOTA,
    SMALL_QUOTA_LIMIT,
    create_pg_schema,
    drop_pg_schema,
    granted_request,
    pg_base_url,
    pg_schema_url,
    start_server,
)
from sqlalchemy import func, select

from api.keystore import KeyStore
from kmrules.quota.ledger import Ledger
from kmrules.store.database import make_engine, migrate
from kmrules.store.tables import audit_log, quota_places

CASES = 150  # distinct first applications, each sent twice (once to each server), against 25 places


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    base = pg_base_url()
    schema = create_pg_schema(base)
    yield pg_schema_url(base, schema)
    drop_pg_schema(base, schema)


async def _load(urls: list[str], key: str) -> list[dict[str, Any]]:
    """Every case to both servers at once (duplicates race each other), 48 requests in flight."""
    gate = asyncio.Semaphore(48)
    headers = {"Authorization": f"Bearer {key}"}
    jobs = [(urls[(i + r) % 2], granted_request(i, case_id=f"pg-case-{i}")) for i in range(CASES) for r in range(2)]
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as client:

        async def one(url: str, body: dict[str, Any]) -> dict[str, Any]:
            async with gate:
                response = await client.post(f"{url}/v1/decisions", json=body, headers=headers)
                assert response.status_code == 200, response.text
                return dict(response.json())

        return list(await asyncio.gather(*(one(u, b) for u, b in jobs)))


def test_two_servers_never_exceed_a_quota(pg_url: str, tmp_path: Path, rules_copy: Path) -> None:
    engine = make_engine(pg_url)
    migrate(engine)
    key, _ = KeyStore(engine).create("caseworker")
    servers = [start_server(tmp_path, database_url=pg_url, rules_dir=rules_copy) for _ in range(2)]
    try:
        answers = asyncio.run(_load([s.url for s in servers], key))
        status = httpx.get(
            f"{servers[0].url}/v1/quotas/{SMALL_QUOTA}", headers={"Authorization": f"Bearer {key}"}, timeout=30
        ).json()
    finally:
        for server in servers:
            server.stop()

    results = Counter(a["quota"][0]["result"] for a in answers)
    assert results["place_taken"] == SMALL_QUOTA_LIMIT, results
    assert set(results) <= {"place_taken", "already_held", "full"}
    by_case: dict[str, set[str]] = {}
    for a in answers:
        by_case.setdefault(a["receipt"]["ledger"]["case_id"], set()).add(a["quota"][0]["result"])
    holders = [c for c, r in by_case.items() if r & {"place_taken", "already_held"}]
    assert len(holders) == SMALL_QUOTA_LIMIT
    assert all(a["outcome"] == "refused" for a in answers if a["quota"][0]["result"] == "full")
    assert status["usage"][0]["used"] == SMALL_QUOTA_LIMIT

    with engine.connect() as conn:
        active = (
            conn.execute(
                select(quota_places.c.case_id).where(
                    quota_places.c.quota_id == SMALL_QUOTA, quota_places.c.released_at.is_(None)
                )
            )
            .scalars()
            .all()
        )
        audited = conn.execute(
            select(func.count()).select_from(audit_log).where(audit_log.c.kind == "decision")
        ).scalar_one()
    assert sorted(active) == sorted(holders) and len(set(active)) == SMALL_QUOTA_LIMIT
    assert audited == 2 * CASES
    assert Ledger(engine).verify([SMALL_QUOTA]) == []
    engine.dispose()
