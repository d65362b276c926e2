"""The SQL the ledger runs on its two tables: counters locked in order, places looked up.

Kept apart from the Ledger's transaction logic so each reads on its own; every function runs
inside a transaction the caller owns.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, exists, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from kmrules.quota.outcome import HeldPlace
from kmrules.store.tables import quota_counters as counters
from kmrules.store.tables import quota_places as places


def lock_counters(conn: Connection, quota_id: str, periods: list[str]) -> dict[str, int]:
    """Create missing counter rows and lock them, in sorted order; returns used per period."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    used: dict[str, int] = {}
    for key in sorted(periods):
        conn.execute(
            insert(counters)
            .values(quota_id=quota_id, period_key=key, used=0)
            .on_conflict_do_nothing(index_elements=["quota_id", "period_key"])
        )
        stmt = (
            select(counters.c.used)
            .where(counters.c.quota_id == quota_id, counters.c.period_key == key)
            .with_for_update()
        )
        used[key] = int(conn.execute(stmt).scalar_one())
    return used


def read_counters(conn: Connection, quota_id: str, periods: list[str]) -> dict[str, int]:
    """Used per period, without locking (0 for a period with no row yet)."""
    stmt = select(counters.c.period_key, counters.c.used).where(
        counters.c.quota_id == quota_id, counters.c.period_key.in_(periods)
    )
    found: Mapping[str, int] = {k: int(u) for k, u in conn.execute(stmt)}
    return {key: found.get(key, 0) for key in periods}


def held_place(conn: Connection, quota_id: str, case_id: str) -> HeldPlace | None:
    """The active place a case holds in a quota (period, number), if any."""
    stmt = select(places.c.period_key, places.c.place_no).where(
        places.c.quota_id == quota_id,
        places.c.case_id == case_id,
        places.c.released_at.is_(None),
    )
    row = conn.execute(stmt).first()
    return (str(row[0]), int(row[1])) if row is not None else None


def next_place(conn: Connection, quota_id: str, key: str, used: int) -> int:
    """The lowest free place number: released numbers are taken again before new ones."""
    if used == 0:
        return 1
    active = (
        places.c.quota_id == quota_id,
        places.c.period_key == key,
        places.c.released_at.is_(None),
    )
    top = conn.scalar(select(func.max(places.c.place_no)).where(*active))
    if top == used:
        return used + 1
    if conn.scalar(select(places.c.id).where(*active, places.c.place_no == 1).limit(1)) is None:
        return 1
    nxt = places.alias("nxt")
    successor_free = ~exists().where(
        nxt.c.quota_id == quota_id,
        nxt.c.period_key == key,
        nxt.c.released_at.is_(None),
        nxt.c.place_no == places.c.place_no + 1,
    )
    return int(conn.execute(select(func.min(places.c.place_no + 1)).where(*active, successor_free)).scalar_one())
