"""Engines and migrations for the two supported backends: SQLite (embedded) and PostgreSQL.

SQLite gets WAL, a busy timeout, foreign keys and SQLAlchemy-controlled BEGIN: writers begin
with BEGIN IMMEDIATE so they take the write lock up front (a deferred transaction that later
writes can fail at once with "database is locked" instead of waiting); read-only work may opt
into a deferred BEGIN with `read_only(conn)`.
"""

from __future__ import annotations

import sqlite3
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry

from kmrules.store.errors import UnsupportedDatabaseError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "kmrules_alembic_version"
SQLITE_BUSY_TIMEOUT_MS = 10_000
BEGIN_OPTION = "kmrules_sqlite_begin"
_NO_BEGIN = "NONE"
IDLE_PING_SECONDS = 1.0
"""A PostgreSQL connection that sat in the pool longer than this is pinged before use."""
_IDLE_SINCE = "kmrules_idle_since"
MIGRATION_LOCK_KEY = zlib.crc32(b"kmrules.store.migrate")
"""Key of the PostgreSQL advisory lock that serialises concurrent migrations."""
_PG_DRIVERNAMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2")
T = TypeVar("T")


def default_sqlite_url(data_dir: Path) -> str:
    """The embedded database: one SQLite file in the data directory."""
    return URL.create("sqlite", database=str(Path(data_dir) / "kmrules.sqlite")).render_as_string()


def make_engine(
    url: str,
    *,
    pool_size: int | None = None,
    max_overflow: int | None = None,
    echo: bool = False,
    sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    sqlite_autocheckpoint: int | None = None,
    idle_ping_seconds: float = IDLE_PING_SECONDS,
) -> Engine:
    """An engine for a SQLite or PostgreSQL URL (`postgresql://` is served by psycopg 3).

    PostgreSQL lock waits are bounded by the server's `lock_timeout` (e.g. pass
    `?options=-clock_timeout%3D5000` in the URL); SQLite's by `sqlite_busy_timeout_ms`.
    `sqlite_autocheckpoint`: WAL pages after which a commit checkpoints (None: SQLite's 1000;
    0: never, for an owner that checkpoints itself, see store.checkpoint).
    `idle_ping_seconds`: see `_ping_after_idle` (PostgreSQL).
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    kwargs: dict[str, Any] = {"echo": echo}
    if pool_size is not None:
        kwargs["pool_size"] = pool_size
    if max_overflow is not None:
        kwargs["max_overflow"] = max_overflow
    if backend == "sqlite":
        return _sqlite_engine(parsed, kwargs, sqlite_busy_timeout_ms, sqlite_autocheckpoint)
    if backend in ("postgresql", "postgres"):
        if parsed.drivername not in _PG_DRIVERNAMES:
            raise UnsupportedDatabaseError(f"use postgresql+psycopg:// (psycopg 3), not {parsed.drivername}://")
        parsed = parsed.set(drivername="postgresql+psycopg")
        return _ping_after_idle(create_engine(parsed, **kwargs), idle_ping_seconds)
    raise UnsupportedDatabaseError(f"unsupported database {backend!r}: use sqlite or postgresql")


def _ping_after_idle(engine: Engine, idle_seconds: float) -> Engine:
    """Ping a pooled connection before use only if it sat idle longer than `idle_seconds`.

    Why not SQLAlchemy's `pool_pre_ping`: it pings at every checkout, one more round trip per
    decision (measured in-process on PostgreSQL: ~0.3 ms of CPU and ~0.5 ms of wall time of a
    1.7 ms decision). A connection that was used a moment ago is alive in practice; the ones
    that go stale (a server restart or an idle timeout during a quiet spell) have sat in the
    pool, and are pinged and replaced as before. One that breaks while in steady use (the
    server restarted under load) fails its statement; SQLAlchemy then invalidates the pool,
    and the ledger runs the work again on a fresh connection (`Ledger._run` says when)."""

    def on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is None or time.monotonic() - since <= idle_seconds:
            return  # new, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # the pool throws this connection away and checks out another (up to 3 times)
            raise DisconnectionError(f"stale pooled connection: {type(exc).__name__}") from exc

    event.listen(engine, "checkin", on_checkin)
    event.listen(engine, "checkout", on_checkout)
    return engine


def read_only(conn: Connection) -> Connection:
    """Mark a connection's transactions as reads: a deferred BEGIN on SQLite (no write lock)."""
    return conn.execution_options(**{BEGIN_OPTION: "DEFERRED"})


def read(engine: Engine, query: Callable[[Connection], T]) -> T:
    """`query` in a read-only transaction, run once more on a fresh connection if the one it
    had broke (a server restart; see `_ping_after_idle`): a read is always safe to repeat."""
    try:
        return _read_once(engine, query)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    return _read_once(engine, query)


def _read_once(engine: Engine, query: Callable[[Connection], T]) -> T:
    with engine.connect() as conn:
        read_only(conn)
        with conn.begin():
            return query(conn)


def autocommit(conn: Connection) -> Connection:
    """Mark a connection for single statements that commit on their own: no BEGIN or COMMIT
    is sent (PostgreSQL: AUTOCOMMIT; SQLite: the driver's own autocommit, no BEGIN IMMEDIATE).
    Only for work that is one statement: several would not be one transaction."""
    if conn.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="AUTOCOMMIT")
    return conn.execution_options(**{BEGIN_OPTION: _NO_BEGIN})


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe to run from several processes at once.

    PostgreSQL: the whole upgrade runs in one transaction under an advisory lock, so a second
    process waits and then finds the schema current. SQLite: the upgrade runs under
    BEGIN IMMEDIATE, which has the same effect.
    """
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def alembic_config(url: str | None = None) -> Config:
    """The Alembic configuration, built in code: no alembic.ini needed at run time."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def sqlite_path(url: str | URL) -> Path | None:
    """The file of an SQLite URL (None for PostgreSQL, memory or URI databases)."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()


def _sqlite_engine(url: URL, kwargs: dict[str, Any], busy_timeout_ms: int, autocheckpoint: int | None) -> Engine:
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)

    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        _sqlite_on_connect(dbapi_connection, busy_timeout_ms, autocheckpoint)

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, busy_timeout_ms: int, autocheckpoint: int | None) -> None:
    # SQLAlchemy emits BEGIN itself (see _sqlite_on_begin); the driver must not.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        _ensure_wal(cursor, busy_timeout_ms)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        if autocheckpoint is not None:
            cursor.execute(f"PRAGMA wal_autocheckpoint = {int(autocheckpoint)}")
    finally:
        cursor.close()


def _ensure_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """Switch a database to WAL (persistent, so normally once). The switch needs an exclusive
    lock and does not wait on the busy handler, so a concurrent first use is retried here."""
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(BEGIN_OPTION, "IMMEDIATE")
    if mode == _NO_BEGIN:  # see autocommit(): the statement commits on its own
        return
    conn.exec_driver_sql("BEGIN DEFERRED" if mode == "DEFERRED" else "BEGIN IMMEDIATE")
