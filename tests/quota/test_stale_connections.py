"""PostgreSQL connections that break: pinged only after sitting idle, retried only when safe.

Real server, real broken connections: a test ends the backends of its own engine with
`pg_terminate_backend`, as a server restart would.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from quota_helpers import build_defn, unique
from sqlalchemy import Engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from api.keystore import KeyStore
from kmrules.quota.ledger import Ledger
from kmrules.store.audit import append_audit
from kmrules.store.database import make_engine, read
from kmrules.store.tables import audit_log

DAY = date(2024, 3, 1)


@pytest.fixture
def app_name() -> str:
    return unique("stale")


def _engine(pg_url: str, app_name: str, idle_ping_seconds: float) -> Engine:
    url = make_url(pg_url).update_query_dict({"application_name": app_name}).render_as_string(hide_password=False)
    return make_engine(url, idle_ping_seconds=idle_ping_seconds)


@pytest.fixture
def never_pinging(pg_url: str, pg_engine: Engine, app_name: str) -> Iterator[Engine]:
    """Connections are never pinged (an hour of idleness would be needed): a broken one is
    found by the statement that uses it."""
    engine = _engine(pg_url, app_name, 3600.0)
    yield engine
    engine.dispose()


def _terminate(admin: Engine, app_name: str) -> int:
    """End every server backend of the engine under test, as a restart would; how many."""
    with admin.connect() as conn:
        ended = conn.execute(
            text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = :a"),
            {"a": app_name},
        ).scalar_one()
    return int(ended)


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _count_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record each ping the pool makes (the dialect's own ping still runs)."""
    pings: list[int] = []
    original = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return original(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return pings


def _audit(case_id: str) -> Any:
    def write(conn: Any) -> None:
        append_audit(conn, kind="decision", request_json="{}", response_json="{}", actor_role="test", case_id=case_id)

    return write


def _audit_rows(engine: Engine, case_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(audit_log.c.case_id == case_id)).scalar_one())


def test_a_connection_used_a_moment_ago_is_not_pinged(
    pg_url: str, pg_engine: Engine, app_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(pg_url, app_name, 60.0)
    try:
        pings = _count_pings(engine, monkeypatch)
        pids = {_backend_pid(engine) for _ in range(5)}
        assert (len(pids), pings) == (1, [])
    finally:
        engine.dispose()


def test_a_connection_that_sat_idle_is_pinged_and_a_stale_one_replaced(
    pg_url: str, pg_engine: Engine, app_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(pg_url, app_name, 0.0)  # every connection back in the pool counts as idle
    try:
        pings = _count_pings(engine, monkeypatch)
        first = _backend_pid(engine)
        assert _backend_pid(engine) == first
        assert len(pings) == 1
        assert _terminate(pg_engine, app_name) == 1
        replaced = _backend_pid(engine)  # the ping fails: the pool connects afresh, no error
        assert replaced != first
        assert len(pings) == 2
    finally:
        engine.dispose()


def test_an_audit_row_whose_connection_broke_is_written_once_on_a_fresh_one(
    never_pinging: Engine, pg_engine: Engine, app_name: str
) -> None:
    ledger = Ledger(never_pinging)
    warm, case = unique("case"), unique("case")
    ledger.write_alone(_audit(warm))
    assert _terminate(pg_engine, app_name) == 1
    ledger.write_alone(_audit(case))
    assert (_audit_rows(pg_engine, warm), _audit_rows(pg_engine, case)) == (1, 1)


def test_a_reservation_whose_connection_broke_is_taken_once_on_a_fresh_one(
    never_pinging: Engine, pg_engine: Engine, app_name: str
) -> None:
    ledger = Ledger(never_pinging)
    defn = build_defn(limit=5)
    ledger.reserve(defn, DAY, unique("case"))
    assert _terminate(pg_engine, app_name) == 1
    case = unique("case")
    answer = ledger.reserve(defn, DAY, case, on_commit=_audit(case))
    assert (answer.granted, answer.place_no) == (True, 2)
    assert ledger.usage(defn, "2024").used == 2
    assert ledger.verify([defn.id]) == []
    assert _audit_rows(pg_engine, case) == 1


def test_a_transaction_whose_commit_was_lost_is_not_run_again(
    never_pinging: Engine, pg_engine: Engine, app_name: str
) -> None:
    """The connection breaks as COMMIT is about to be sent: the outcome is unknown to the
    client, so the ledger raises instead of taking a second place (here the server never got
    the COMMIT, so nothing was written)."""
    ledger = Ledger(never_pinging)
    defn = build_defn(limit=5)
    ledger.reserve(defn, DAY, unique("case"))  # a pooled, warm connection
    attempts: list[datetime] = []

    def break_before_commit(_conn: Any) -> None:
        _terminate(pg_engine, app_name)

    event.listen(never_pinging, "commit", break_before_commit)
    with pytest.raises(DBAPIError) as raised:
        ledger.reserve(defn, DAY, unique("case"), on_commit=lambda _c: attempts.append(datetime.now(UTC)))
    event.remove(never_pinging, "commit", break_before_commit)
    assert raised.value.connection_invalidated
    assert len(attempts) == 1
    assert ledger.usage(defn, "2024").used == 1
    assert ledger.verify([defn.id]) == []


def test_a_connection_that_breaks_under_the_callback_is_retried_before_commit(
    never_pinging: Engine, pg_engine: Engine, app_name: str
) -> None:
    """The audit row is the callback's statement, inside the reservation's transaction: a
    connection lost there loses the whole uncommitted transaction, which runs again once."""
    ledger = Ledger(never_pinging)
    defn = build_defn(limit=5)
    case = unique("case")
    attempts: list[int] = []

    def audit_breaking_once(conn: Any) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            _terminate(pg_engine, app_name)
        _audit(case)(conn)

    answer = ledger.reserve(defn, DAY, case, on_commit=audit_breaking_once)
    assert (answer.granted, answer.place_no, len(attempts)) == (True, 1, 2)
    assert ledger.usage(defn, "2024").used == 1
    assert _audit_rows(pg_engine, case) == 1


def test_a_read_whose_connection_broke_is_read_again_on_a_fresh_one(
    never_pinging: Engine, pg_engine: Engine, app_name: str
) -> None:
    case = unique("case")
    Ledger(never_pinging).write_alone(_audit(case))
    assert _terminate(pg_engine, app_name) == 1
    count = read(never_pinging, lambda conn: conn.execute(select(func.count()).where(audit_log.c.case_id == case)))
    assert count.scalar_one() == 1


def test_a_key_lookup_whose_connection_broke_is_answered(
    never_pinging: Engine, pg_engine: Engine, app_name: str
) -> None:
    store = KeyStore(never_pinging, ttl_seconds=0.0)  # no cache: every lookup asks the database
    key, _ = store.create("caseworker")
    assert _terminate(pg_engine, app_name) == 1
    principal = store.authenticate(key)
    assert principal is not None and principal.role == "caseworker"


def test_a_read_that_fails_for_another_reason_is_not_repeated(never_pinging: Engine) -> None:
    attempts: list[int] = []

    def bad(conn: Any) -> None:
        attempts.append(1)
        conn.execute(text("SELECT no_such_column FROM audit_log"))

    with pytest.raises(DBAPIError):
        read(never_pinging, bad)
    assert attempts == [1]
