"""PostgreSQL plans of the ledger's lookups on a table nobody analyzed (autovacuum is off on
these machines): the top-place lookup is a backward index step at any size, and the ledger
gathers statistics once it holds places, after which the held-place lookup takes an index on
the case. Real server, fresh schemas; nothing on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from quota_helpers import build_defn, create_schema, drop_schema, pg_base_url, schema_url, unique
from sqlalchemy import Engine, text
from sqlalchemy.dialects import postgresql

import kmrules.quota.ledger as ledger_module
from kmrules.quota.ledger import Ledger
from kmrules.quota.statements import _HELD_PLACE, _TOP_PLACE
from kmrules.store.database import make_engine, migrate

DAY = date(2024, 3, 1)


@pytest.fixture
def fresh() -> Iterator[Engine]:
    """A migrated schema of its own: its tables have never been analyzed."""
    base = pg_base_url()
    name = create_schema(base)
    engine = make_engine(schema_url(base, name))
    migrate(engine)
    yield engine
    engine.dispose()
    drop_schema(base, name)


def _fill(engine: Engine, quota_id: str, places: int) -> None:
    """Many active places in one period, written straight into the tables (no ANALYZE)."""
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO quota_counters (quota_id, period_key, used) VALUES (:q, '2024', :n)"),
            {"q": quota_id, "n": places},
        )
        conn.execute(
            text(
                "INSERT INTO quota_places (quota_id, period_key, case_id, place_no, reserved_at) "
                "SELECT :q, '2024', 'case-' || g, g, now() FROM generate_series(1, :n) g"
            ),
            {"q": quota_id, "n": places},
        )


def _plan(engine: Engine, statement: Any, params: dict[str, Any]) -> str:
    sql = str(statement.compile(dialect=postgresql.dialect()))
    with engine.connect() as conn:
        return "\n".join(str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + sql, params))


def _never_analyzed(engine: Engine, table: str) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text("SELECT reltuples < 0 FROM pg_class WHERE oid = to_regclass(:t)"), {"t": table}
            ).scalar_one()
        )


def test_the_top_place_is_one_backward_index_step_without_statistics(fresh: Engine) -> None:
    quota = unique("q")
    _fill(fresh, quota, 5000)
    assert _never_analyzed(fresh, "quota_places")
    plan = _plan(fresh, _TOP_PLACE, {"q": quota, "k": "2024"})
    assert "Limit" in plan and "Index Only Scan Backward using uq_quota_places_active_place" in plan, plan
    with fresh.connect() as conn:
        assert conn.scalar(_TOP_PLACE, {"q": quota, "k": "2024"}) == 5000


def test_a_ledger_that_holds_places_gathers_statistics_once(fresh: Engine) -> None:
    ledger = Ledger(fresh)
    assert ledger.ensure_statistics() == []  # empty tables: statistics of nothing would not help
    assert _never_analyzed(fresh, "quota_places")
    quota = unique("q")
    _fill(fresh, quota, 5000)
    before = _plan(fresh, _HELD_PLACE, {"q": quota, "c": "case-2500"})
    assert ledger.ensure_statistics() == ["quota_counters", "quota_places"]
    assert not _never_analyzed(fresh, "quota_places")
    after = _plan(fresh, _HELD_PLACE, {"q": quota, "c": "case-2500"})
    # before: the place-number index, with the case as a filter over every active place
    assert "uq_quota_places_active_place" in before, before
    assert "uq_quota_places_active_place" not in after and "case_id" in after, after
    assert ledger.ensure_statistics() == []  # analyzed now: nothing more to do


def test_the_ledger_asks_for_statistics_after_its_first_places(fresh: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "ANALYZE_AFTER_TAKES", 3)
    ledger = Ledger(fresh)
    defn = build_defn(limit=100)
    for n in range(2):
        assert ledger.reserve(defn, DAY, unique(f"case{n}")).granted
    assert _never_analyzed(fresh, "quota_places")
    assert ledger.reserve(defn, DAY, unique("case2")).granted
    assert not _never_analyzed(fresh, "quota_places")


def test_sqlite_needs_no_statistics(sqlite_engine: Engine) -> None:
    assert Ledger(sqlite_engine).ensure_statistics() == []
