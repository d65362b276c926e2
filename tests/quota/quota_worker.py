"""A separate process for the multi-process tests (run as a script, never imported by pytest).

quota_worker.py reserve URL DEFN_JSON PREFIX N THREADS   wait for "go", reserve N cases
quota_worker.py hang URL DEFN_JSON CASE_ID               reserve; sleep inside the transaction
quota_worker.py migrate URL                              wait for "go", migrate
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import date

from sqlalchemy import Connection

from kmrules.quota.definitions import QuotaDefinition
from kmrules.quota.ledger import Ledger, Reservation
from kmrules.store.database import make_engine, migrate

ON = date(2024, 5, 1)


def reserve_many(url: str, defn: QuotaDefinition, prefix: str, n: int, threads: int) -> None:
    engine = make_engine(url, pool_size=threads, max_overflow=0)
    ledger = Ledger(engine)
    ledger.usage(defn, "2024")  # connect before the start signal
    answers: list[Reservation] = []
    lock = threading.Lock()

    def run(indexes: range) -> None:
        for i in indexes:
            answer = ledger.reserve(defn, ON, f"{prefix}-{i}")
            with lock:
                answers.append(answer)

    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no start signal")
    workers = [threading.Thread(target=run, args=(range(t, n, threads),)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    granted = [a.place_no for a in answers if a.granted]
    print(json.dumps({"granted": len(granted), "answers": len(answers), "places": granted}))


def hang(url: str, defn: QuotaDefinition, case_id: str) -> None:
    ledger = Ledger(make_engine(url))

    def stall(conn: Connection) -> None:
        print("IN_TX", flush=True)
        time.sleep(120)

    ledger.reserve(defn, ON, case_id, on_commit=stall)
    print("COMMITTED", flush=True)  # the test kills us before this


def migrate_when_told(url: str) -> None:
    engine = make_engine(url)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no start signal")
    migrate(engine)
    print("OK", flush=True)


def main(argv: list[str]) -> None:
    mode, url = argv[1], argv[2]
    if mode == "reserve":
        defn = QuotaDefinition.model_validate_json(argv[3])
        reserve_many(url, defn, argv[4], int(argv[5]), int(argv[6]))
    elif mode == "hang":
        hang(url, QuotaDefinition.model_validate_json(argv[3]), argv[4])
    elif mode == "migrate":
        migrate_when_told(url)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
