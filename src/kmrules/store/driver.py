"""One Core statement run straight on the driver's connection, for the hottest write.

Why: every decision writes one audit row. Through `Connection.execute` that INSERT cost
~100 µs of SQLAlchemy's execution machinery (execution context, event dispatch, result
set-up) on top of the ~80 µs SQLite itself needs (measured in-process, 3,000 inserts each:
182-199 µs against 101-118 µs); at 500 decisions/s that is ~5% of a CPU core. This class keeps
what makes the statement right and drops the rest:

- the SQL is the statement SQLAlchemy compiles for the connection's dialect (its paramstyle,
  its quoting), compiled once per dialect;
- every value passes through its column type's bind processor for the dialect, as
  `Connection.execute` applies it (e.g. `UtcDateTime` -> UTC, then SQLite's text form of a
  timestamp: the driver's own datetime adapter would store another form, `+00:00` added);
- it runs on the DBAPI connection that the SQLAlchemy `Connection` holds, so it is inside
  that connection's transaction, or autocommitted where the connection is (`autocommit`);
- a driver error is raised as the `sqlalchemy.exc.DBAPIError` subclass `Connection.execute`
  would raise (IntegrityError, OperationalError, ...), with `connection_invalidated` set and
  the connection invalidated when the dialect says the connection is gone, so callers' retry
  rules (`Ledger._run`, `store.retry.is_transient`) read it exactly as before.

What it does not do: SQLAlchemy's statement events and `echo` logging are not fired for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.interfaces import DBAPIModule
from sqlalchemy.exc import DBAPIError


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional: tuple[str, ...] | None
    """Parameter names in order for a positional paramstyle (qmark, format); None for named."""
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]


class DriverInsert:
    """An INSERT of all of a table's columns, executed on the driver connection (see module)."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._columns = tuple(c.name for c in table.c)
        self._compiled: dict[tuple[type[Dialect], str], _Compiled] = {}

    def execute(self, conn: Connection, values: Mapping[str, Any]) -> None:
        """Insert one row of `values` (one per column) in `conn`'s transaction."""
        missing = set(self._columns) - set(values)
        if missing:
            raise ValueError(f"no value for column(s) {sorted(missing)}")
        dialect = conn.dialect
        compiled = self._compiled_for(dialect)
        bound = dict(values)
        for name, process in compiled.processors:
            bound[name] = process(bound[name])
        params: Any = tuple(bound[n] for n in compiled.positional) if compiled.positional is not None else bound
        fairy = conn.connection  # the pooled DBAPI connection this Connection holds
        dbapi_error: type[DBAPIModule.Error] = dialect.loaded_dbapi.Error
        cursor = fairy.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, params)
        except dbapi_error as exc:
            gone = bool(dialect.is_disconnect(exc, fairy.dbapi_connection, cursor))
            if gone:
                conn.invalidate(exc)
            raise DBAPIError.instance(
                compiled.sql, params, exc, dbapi_error, connection_invalidated=gone, dialect=dialect
            ) from exc
        finally:
            if not conn.invalidated:
                cursor.close()

    def _compiled_for(self, dialect: Dialect) -> _Compiled:
        key = (type(dialect), dialect.paramstyle)
        found = self._compiled.get(key)
        if found is None:
            compiled = self._table.insert().compile(dialect=dialect, column_keys=list(self._columns))
            processors = tuple(
                (c.name, p)
                for c in self._table.c
                if (p := c.type.dialect_impl(dialect).bind_processor(dialect)) is not None
            )
            positional = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
            found = self._compiled[key] = _Compiled(compiled.string, positional, processors)
        return found
