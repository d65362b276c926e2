"""The transactional quota ledger on SQLite or PostgreSQL.

Every write runs in one short transaction that first locks the counter rows of the periods
that bound it (in sorted order, so two transactions never deadlock), decides with
`reservation_outcome`, then changes places and counters together. Lock waits and
serialisation conflicts are retried a bounded number of times; a failure anywhere rolls
the whole transaction back, so there is never a partial write.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from typing import TypeVar

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from kmrules.quota.definitions import QuotaDefinition
from kmrules.quota.errors import (
    DuplicateQuotaError,
    InvalidCaseIdError,
    LedgerBusyError,
    LedgerInvariantError,
    NothingHeldError,
)
from kmrules.quota.models import Released, Reservation, Usage
from kmrules.quota.outcome import reservation_outcome, usage_from
from kmrules.quota.periods import constraining_periods, period_key
from kmrules.quota.statements import count_one, held_place, lock_counters, next_place, read_counters, take_place
from kmrules.store.database import autocommit, read_only
from kmrules.store.retry import is_transient
from kmrules.store.statistics import analyze_if_never
from kmrules.store.tables import quota_counters as counters
from kmrules.store.tables import quota_places as places

__all__ = [
    "Ledger",
    "OnCommit",
    "OnReleased",
    "OnResult",
    "OnResults",
    "Released",
    "Reservation",
    "Usage",
]

T = TypeVar("T")
log = logging.getLogger("kmrules.quota")
ANALYZE_AFTER_TAKES = 1_000
"""Places taken by one Ledger after which it asks for planner statistics (store.statistics)."""
LEDGER_TABLES = ("quota_counters", "quota_places")
OnCommit = Callable[[Connection], None]
"""Runs inside the ledger's transaction, before commit; if it raises, nothing is written."""
OnResult = Callable[[Connection, Reservation], None]
"""Like OnCommit, and also sees the answer (e.g. to write it into the audit row)."""
OnResults = Callable[[Connection, list[Reservation]], None]
"""Like OnResult, for `reserve_all`: sees every answer, in the order of the definitions."""
OnReleased = Callable[[Connection, list[Released]], None]
"""Like OnCommit, for `release`: sees the places given back."""


class _Conflict(Exception):
    """A unique index caught a concurrent conflicting write; run the transaction again."""


class _CallbackFailed(Exception):
    """Carries a caller's callback exception past the retry loop, which must not retry it."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(repr(original))
        self.original = original


class Ledger:
    """Places of quotas and target figures, held per case, in a SQL database."""

    def __init__(self, engine: Engine, *, max_attempts: int = 8, backoff_seconds: float = 0.02) -> None:
        self._engine = engine
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._takes = 0
        self._statistics_pending = engine.dialect.name == "postgresql"
        self._statistics_lock = threading.Lock()

    def ensure_statistics(self) -> list[str]:
        """Gather PostgreSQL planner statistics for the ledger's tables if they hold rows and
        nobody ever has (see store.statistics: why); the tables analyzed. Runs by itself once
        this ledger has taken ANALYZE_AFTER_TAKES places; call it at start-up too. A failure
        (e.g. no right to ANALYZE) is logged as a warning and not tried again: the decisions
        are right without statistics, only slower."""
        with self._statistics_lock:
            if not self._statistics_pending:
                return []
            try:
                return analyze_if_never(self._engine, LEDGER_TABLES)
            except DBAPIError as exc:
                self._statistics_pending = False
                log.warning("could not gather planner statistics: %s", exc.orig)
                return []

    def _after_write(self) -> None:
        if self._statistics_pending and self._takes >= ANALYZE_AFTER_TAKES:
            self.ensure_statistics()
            self._statistics_pending = False

    def reserve(
        self,
        defn: QuotaDefinition,
        application_date: date,
        case_id: str,
        *,
        on_commit: OnCommit | None = None,
        on_result: OnResult | None = None,
    ) -> Reservation:
        """Take a place for a case (idempotent: a retry gets the same place, already_held).

        Quota: refused when the period is full. Target: always granted, `exceeded` when over.
        The callbacks run in the same transaction for every answer, granted or refused.
        """
        _check_case_id(case_id)
        key = period_key(defn, application_date)

        def work(conn: Connection) -> Reservation:
            answer = self._answer(conn, defn, key, case_id, lock=True)
            if answer.granted and not answer.already_held and answer.place_no is not None:
                self._take(conn, defn, answer, answer.place_no)
            _call(on_commit, conn)
            if on_result is not None:
                _call(lambda c: on_result(c, answer), conn)
            return answer

        answer = self._run(work, write=True)
        self._after_write()
        return answer

    def reserve_all(
        self,
        defns: Sequence[QuotaDefinition],
        application_date: date,
        case_id: str,
        *,
        dry_run: bool = False,
        on_result: OnResults | None = None,
    ) -> list[Reservation]:
        """Take a place in every definition at once, all or nothing, in one transaction.

        A case governed by several quotas must not keep a place in one when another refuses
        it: if any answer is a refusal, no place is taken in any definition, and the other
        answers are what `peek` would say. `dry_run` takes nothing either way. Counters are
        locked in (quota id, period) order, as `reserve` and `release` do, so concurrent
        calls cannot deadlock. `on_result` runs in the same write transaction for every
        answer (also with no definitions at all), so an audit row commits with the places.
        """
        _check_case_id(case_id)
        ids = [d.id for d in defns]
        if len(set(ids)) != len(ids):
            raise DuplicateQuotaError(sorted({i for i in ids if ids.count(i) > 1}))
        keys = {d.id: period_key(d, application_date) for d in defns}

        def work(conn: Connection) -> list[Reservation]:
            answers = {
                d.id: self._answer(conn, d, keys[d.id], case_id, lock=not dry_run)
                for d in sorted(defns, key=lambda d: d.id)
            }
            if not dry_run and all(a.granted for a in answers.values()):
                for d in defns:
                    answer = answers[d.id]
                    if not answer.already_held and answer.place_no is not None:
                        self._take(conn, d, answer, answer.place_no)
            result = [answers[d.id] for d in defns]
            if on_result is not None:
                _call(lambda c: on_result(c, result), conn)
            return result

        results = self._run(work, write=True)
        self._after_write()
        return results

    def peek(self, defn: QuotaDefinition, application_date: date, case_id: str) -> Reservation:
        """What `reserve` would answer now, writing nothing (a dry run)."""
        _check_case_id(case_id)
        key = period_key(defn, application_date)
        return self._run(lambda conn: self._answer(conn, defn, key, case_id, lock=False))

    def release(
        self,
        case_id: str,
        quota_id: str | None = None,
        *,
        on_commit: OnCommit | None = None,
        on_result: OnReleased | None = None,
    ) -> list[Released]:
        """Give back the case's places (of one quota, or all); NothingHeldError if none held.

        The callbacks run in the same transaction (e.g. to audit what was released).
        """
        _check_case_id(case_id)

        def work(conn: Connection) -> list[Released]:
            released = self._release(conn, case_id, quota_id)
            _call(on_commit, conn)
            if on_result is not None:
                _call(lambda c: on_result(c, released), conn)
            return released

        return self._run(work, write=True)

    def write_alone(self, write: OnCommit) -> None:
        """Run `write`, one INSERT or UPDATE that takes no place (e.g. the audit row of a
        decision no quota governs), committed on its own: a single statement is atomic by
        itself, so it skips the BEGIN and COMMIT round trips (two of a PostgreSQL write's
        three). Lock waits are retried as in every other write."""
        self._run(write, write=True, alone=True)  # not through _call: a lock wait here is retried

    def usage(self, defn: QuotaDefinition, period_key: str) -> Usage:
        """How full one period of a quota is."""
        return self._run(lambda conn: self._usage(conn, defn, period_key))

    def usage_all(self, defns: Iterable[QuotaDefinition]) -> list[Usage]:
        """Usage of every period in which a definition holds places now (used > 0)."""
        wanted = list(defns)

        def work(conn: Connection) -> list[Usage]:
            lines: list[Usage] = []
            for defn in wanted:
                stmt = select(counters.c.period_key).where(counters.c.quota_id == defn.id, counters.c.used > 0)
                for key in sorted(conn.scalars(stmt)):
                    lines.append(self._usage(conn, defn, key))
            return sorted(lines, key=lambda u: (u.quota_id, u.period_key))

        return self._run(work)

    def verify(self, quota_ids: Iterable[str] | None = None) -> list[str]:
        """Problems found comparing counters with active places (of some quotas, or all).

        Empty when consistent; a health check for operators and tests.
        """
        only = None if quota_ids is None else list(quota_ids)

        def work(conn: Connection) -> list[str]:
            active = (
                select(places.c.quota_id, places.c.period_key, func.count().label("n"))
                .where(places.c.released_at.is_(None))
                .group_by(places.c.quota_id, places.c.period_key)
            )
            stored_q = select(counters.c.quota_id, counters.c.period_key, counters.c.used)
            if only is not None:
                active = active.where(places.c.quota_id.in_(only))
                stored_q = stored_q.where(counters.c.quota_id.in_(only))
            counted = {(q, p): int(n) for q, p, n in conn.execute(active)}
            stored = {(q, p): int(u) for q, p, u in conn.execute(stored_q)}
            return [
                f"{q} {p}: counter says {stored.get((q, p), 0)}, active places {n}"
                for (q, p) in sorted(set(counted) | set(stored))
                if (n := counted.get((q, p), 0)) != stored.get((q, p), 0)
            ]

        return self._run(work)

    # -- transactions -------------------------------------------------------------------

    def _run(self, work: Callable[[Connection], T], *, write: bool = False, alone: bool = False) -> T:
        """Run `work` in a transaction of its own (or, `alone`, as one autocommit statement),
        again after a lock wait or conflict, and again on a fresh connection when the one it
        had broke before its commit was sent (a server restart: the pool pings only
        connections that sat idle, see store.database). A transaction whose COMMIT was lost
        is never run again: it may have committed. A lost `alone` statement is run again: at
        worst (the server committed it and died before answering) its row is written twice."""
        last: BaseException | None = None
        for attempt in range(1, self._max_attempts + 1):
            committing = False
            try:
                with self._engine.connect() as conn:
                    if alone:
                        return work(autocommit(conn))
                    if not write:
                        _as_reader(conn)
                    with conn.begin():
                        result = work(conn)
                        committing = True
                    return result
            except _CallbackFailed as failed:
                raise failed.original from None
            except _Conflict as exc:
                last = exc
            except DBAPIError as exc:
                lost = exc.connection_invalidated and not committing
                if not (lost or is_transient(exc)):
                    raise
                last = exc
                if lost:
                    continue  # the pool was invalidated: the next connection is fresh, no back-off
            if attempt < self._max_attempts:
                time.sleep(self._backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))
        assert last is not None
        raise LedgerBusyError(self._max_attempts, last) from last

    def _answer(self, conn: Connection, defn: QuotaDefinition, key: str, case_id: str, *, lock: bool) -> Reservation:
        periods = constraining_periods(defn, key)
        used = lock_counters(conn, defn.id, periods) if lock else read_counters(conn, defn.id, periods)
        return reservation_outcome(
            defn,
            key,
            case_id,
            used,
            held_place(conn, defn.id, case_id),
            lambda: next_place(conn, defn.id, key, used.get(key, 0)),
        )

    def _take(self, conn: Connection, defn: QuotaDefinition, answer: Reservation, place_no: int) -> None:
        row = {
            "quota_id": defn.id,
            "period_key": answer.period_key,
            "case_id": answer.case_id,
            "place_no": place_no,
            "reserved_at": datetime.now(UTC),
        }
        try:
            take_place(conn, row)
        except IntegrityError as exc:
            raise _Conflict(str(exc.orig)) from exc
        if not count_one(conn, defn.id, answer.period_key, answer.limit if defn.kind == "quota" else None):
            raise LedgerInvariantError(f"counter of {defn.id} {answer.period_key} changed under lock")
        self._takes += 1

    def _release(self, conn: Connection, case_id: str, quota_id: str | None) -> list[Released]:
        held = select(places.c.quota_id, places.c.period_key).where(
            places.c.case_id == case_id, places.c.released_at.is_(None)
        )
        if quota_id is not None:
            held = held.where(places.c.quota_id == quota_id)
        keys = sorted({(q, p) for q, p in conn.execute(held)})
        now = datetime.now(UTC)
        released: list[Released] = []
        for q, p in keys:
            lock_counters(conn, q, [p])
            active = (
                places.c.case_id == case_id,
                places.c.quota_id == q,
                places.c.period_key == p,
                places.c.released_at.is_(None),
            )
            numbers = list(conn.scalars(select(places.c.place_no).where(*active)))
            if not numbers:
                continue
            conn.execute(places.update().where(*active).values(released_at=now))
            stmt = (
                counters.update()
                .where(counters.c.quota_id == q, counters.c.period_key == p)
                .where(counters.c.used >= len(numbers))
                .values(used=counters.c.used - len(numbers))
            )
            if conn.execute(stmt).rowcount != 1:
                raise LedgerInvariantError(f"counter of {q} {p} is below its active places")
            released += [
                Released(quota_id=q, period_key=p, case_id=case_id, place_no=n, released_at=now) for n in numbers
            ]
        if not released:
            raise NothingHeldError(case_id, quota_id)
        return released

    def _usage(self, conn: Connection, defn: QuotaDefinition, key: str) -> Usage:
        return usage_from(defn, key, read_counters(conn, defn.id, constraining_periods(defn, key)))


def _as_reader(conn: Connection) -> None:
    """Reads take no write lock on SQLite and see one snapshot on PostgreSQL."""
    if conn.dialect.name == "postgresql":
        conn.execution_options(isolation_level="REPEATABLE READ")
    else:
        read_only(conn)


def _call(callback: OnCommit | None, conn: Connection) -> None:
    if callback is None:
        return
    try:
        callback(conn)
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise  # the connection broke under the callback's own statement: `_run` may retry
        raise _CallbackFailed(exc) from exc
    except BaseException as exc:
        raise _CallbackFailed(exc) from exc


def _check_case_id(case_id: str) -> None:
    if not 1 <= len(case_id) <= 200:
        raise InvalidCaseIdError(case_id)
