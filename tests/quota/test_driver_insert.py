"""The audit INSERT that runs on the driver connection (store.driver) against real databases:
it stores what `Connection.execute` stores, obeys the transaction, and raises SQLAlchemy's
errors, so the ledger's retry rules and the idempotency check read it as before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from quota_helpers import unique
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from kmrules.store.database import autocommit
from kmrules.store.driver import DriverInsert
from kmrules.store.tables import audit_log


def _row(case_id: str, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": unique("id"),
        # not UTC on purpose: the column type's bind processor must turn it into UTC
        "created_at": datetime(2024, 3, 1, 13, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
        "kind": "decision",
        "idempotency_key": None,
        "case_id": case_id,
        "request_json": '{"a": "ë"}',
        "response_json": "{}",
        "actor_role": "test",
    }
    return {**row, **changes}


def _stored(engine: Engine, row_id: str) -> tuple[Any, ...]:
    """The row as the database holds it: the timestamp in its stored form, not as read back."""
    with engine.connect() as conn:
        raw = conn.exec_driver_sql(
            "SELECT id, CAST(created_at AS TEXT), kind, idempotency_key, case_id, request_json, "
            "response_json, actor_role FROM audit_log WHERE id = " + ("?" if engine.dialect.name == "sqlite" else "%s"),
            (row_id,),
        ).one()
    return tuple(raw[1:])


def test_it_stores_exactly_what_connection_execute_stores(engine: Engine) -> None:
    case = unique("case")
    by_sqlalchemy, by_driver = _row(case), _row(case)
    with engine.begin() as conn:
        conn.execute(audit_log.insert(), by_sqlalchemy)
        DriverInsert(audit_log).execute(conn, by_driver)
    assert _stored(engine, by_driver["id"]) == _stored(engine, by_sqlalchemy["id"])
    with engine.connect() as conn:
        read = conn.execute(select(audit_log.c.created_at).where(audit_log.c.id == by_driver["id"])).scalar_one()
    assert read == datetime(2024, 3, 1, 11, 30, 15, 123456, tzinfo=UTC)


def test_it_commits_and_rolls_back_with_the_callers_transaction(engine: Engine) -> None:
    insert = DriverInsert(audit_log)
    kept, dropped = _row(unique("case")), _row(unique("case"))
    with engine.begin() as conn:
        insert.execute(conn, kept)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        insert.execute(conn, dropped)
        raise RuntimeError("the caller's transaction fails after the insert")
    with engine.connect() as conn:
        ids = set(conn.scalars(select(audit_log.c.id).where(audit_log.c.id.in_([kept["id"], dropped["id"]]))))
    assert ids == {kept["id"]}


def test_an_autocommitted_insert_is_committed_on_its_own(engine: Engine) -> None:
    row = _row(unique("case"))
    with engine.connect() as conn:
        DriverInsert(audit_log).execute(autocommit(conn), row)
        # no commit: the connection goes back to the pool, which rolls back what is open
    with engine.connect() as conn:
        assert conn.scalar(select(audit_log.c.id).where(audit_log.c.id == row["id"])) == row["id"]


def test_a_driver_error_is_raised_as_sqlalchemys_and_the_connection_stays_usable(engine: Engine) -> None:
    insert = DriverInsert(audit_log)
    key = unique("idem")
    first = _row(unique("case"), idempotency_key=key)
    with engine.begin() as conn:
        insert.execute(conn, first)
    with engine.connect() as conn:
        with pytest.raises(IntegrityError) as raised:
            insert.execute(autocommit(conn), _row(unique("case"), idempotency_key=key))
        assert not raised.value.connection_invalidated
        assert "idempotency_key" in str(raised.value.orig)
        assert conn.scalar(select(audit_log.c.id).where(audit_log.c.id == first["id"])) == first["id"]


def test_a_missing_column_is_refused_before_anything_is_sent(engine: Engine) -> None:
    row = _row(unique("case"))
    del row["actor_role"]
    with engine.begin() as conn, pytest.raises(ValueError, match="actor_role"):
        DriverInsert(audit_log).execute(conn, row)
    with engine.connect() as conn:
        assert conn.scalar(select(audit_log.c.id).where(audit_log.c.id == row["id"])) is None
