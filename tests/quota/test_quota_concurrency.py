"""The limit holds under concurrency: threads, processes, and a process killed mid-transaction."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import date

import pytest
from concurrency_helpers import all_at_once
from quota_helpers import WORKER, build_defn, unique
from sqlalchemy import Engine, func, select

from kmrules.quota.ledger import Ledger
from kmrules.store.tables import quota_places

ON = date(2024, 5, 1)
THREADS = 200
LIMIT = 50


def active_places(engine: Engine, quota_id: str) -> int:
    with engine.connect() as conn:
        stmt = select(func.count()).where(quota_places.c.quota_id == quota_id, quota_places.c.released_at.is_(None))
        return int(conn.execute(stmt).scalar_one())


@pytest.mark.parametrize("repetition", range(20))
def test_200_concurrent_reservations_never_exceed_50(engine: Engine, repetition: int) -> None:
    defn = build_defn(limit=LIMIT)
    ledger = Ledger(engine)
    answers = all_at_once(lambda i: ledger.reserve(defn, ON, f"case-{repetition}-{i}"), THREADS)

    granted = [a for a in answers if a.granted]
    assert len(granted) == LIMIT
    assert len(answers) - len(granted) == THREADS - LIMIT
    assert sorted(a.place_no or 0 for a in granted) == list(range(1, LIMIT + 1))
    assert all(a.place_no is None and a.used == LIMIT for a in answers if not a.granted)
    assert ledger.usage(defn, "2024").used == LIMIT
    assert active_places(engine, defn.id) == LIMIT
    assert ledger.verify([defn.id]) == []


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("round_no", range(3))
def test_two_processes_share_one_ledger(engine: Engine, db_url: str, round_no: int) -> None:
    defn = build_defn(limit=40)
    procs = [_spawn("reserve", db_url, defn.model_dump_json(), unique(f"p{n}-{round_no}"), "60", "8") for n in range(2)]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))

    assert sum(r["answers"] for r in results) == 120
    assert sum(r["granted"] for r in results) == 40
    places = sorted(n for r in results for n in r["places"])
    assert places == list(range(1, 41))
    assert Ledger(engine).usage(defn, "2024").used == 40
    assert active_places(engine, defn.id) == 40


def test_sigkill_mid_reservation_leaves_no_half_taken_place(engine: Engine, db_url: str) -> None:
    defn = build_defn(limit=2)
    ledger = Ledger(engine)
    assert ledger.reserve(defn, ON, unique("other")).place_no == 1
    victim = unique("victim")

    proc = _spawn("hang", db_url, defn.model_dump_json(), victim)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "IN_TX"  # inside the transaction, place written
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    usage = ledger.usage(defn, "2024")
    assert usage.used == 1
    assert active_places(engine, defn.id) == 1
    assert ledger.verify([defn.id]) == []

    retry = ledger.reserve(defn, ON, victim)
    assert (retry.granted, retry.already_held, retry.place_no, retry.used) == (True, False, 2, 2)
    again = ledger.reserve(defn, ON, victim)
    assert (again.granted, again.already_held, again.place_no, again.used) == (True, True, 2, 2)
    assert not ledger.reserve(defn, ON, unique("late")).granted
    assert active_places(engine, defn.id) == 2
    assert ledger.verify([defn.id]) == []
