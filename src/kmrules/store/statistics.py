"""PostgreSQL planner statistics for the ledger's tables, gathered once when nobody has.

Why: the ledger's lookups go through partial indexes over active places (`released_at IS
NULL`). A table that was never analyzed (autovacuum off, as on these machines, or a young
table autovacuum has not reached yet) has no column statistics, and PostgreSQL's default guess
for `IS NULL` makes every partial index look nearly empty: the held-place lookup then took the
wrong index and read every active place of the quota (measured: 1.0 ms at 10,000 places, 1.7 ms
at 9,000 under load, inside the counter's lock), and a quota's throughput fell through a run
(2 workers: 464, 420, 355, 315 decisions/s). One ANALYZE of a table that holds rows is enough
for good plans from then on: PostgreSQL scales its row estimates with the table's current size,
and the share of active places stays what it was.

So `analyze_if_never` runs ANALYZE on the tables that hold rows and have never been analyzed
or vacuumed, by anyone. It does nothing once statistics exist, nor on SQLite, whose planner
picks the right indexes for these lookups without them. The ledger calls it at start and
after its first places are taken.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import Engine, bindparam, text

from kmrules.store.database import autocommit

log = logging.getLogger("kmrules.store")

_NEVER_ANALYZED = text(
    # reltuples < 0: never vacuumed or analyzed (PostgreSQL 14 and newer), read from the
    # catalog, not from the statistics collector, whose row counts may lag by seconds
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relname IN :tables AND c.reltuples < 0 ORDER BY c.relname"
).bindparams(bindparam("tables", expanding=True))


def analyze_if_never(engine: Engine, tables: Sequence[str]) -> list[str]:
    """ANALYZE those of `tables` (in the current schema) that hold rows and were never
    analyzed; returns their names. An empty table is left alone: statistics of no rows would
    count as statistics and keep the defaults' plans. PostgreSQL only: an empty list elsewhere."""
    if engine.dialect.name != "postgresql":
        return []
    analyzed: list[str] = []
    with engine.connect() as conn:
        conn = autocommit(conn)
        for name in conn.scalars(_NEVER_ANALYZED, {"tables": list(tables)}):
            quoted = conn.dialect.identifier_preparer.quote(str(name))
            if conn.exec_driver_sql(f"SELECT EXISTS (SELECT FROM {quoted})").scalar():
                conn.exec_driver_sql(f"ANALYZE {quoted}")
                analyzed.append(str(name))
    if analyzed:
        log.info("gathered planner statistics for %s", ", ".join(analyzed))
    return analyzed
