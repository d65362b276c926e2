"""How long SQLite commits wait while the background WAL checkpointer runs, per interval.

Run: .venv/bin/python benchmarks/bench_wal_checkpoint.py [--seconds 10] [--intervals 0.25,1.0] [--rounds 2]

One writer commits an audit-sized row (about 5.5 KB) every 2 ms in autocommit, as the server
does at 500 decisions/s, while `store.checkpoint.WalCheckpointer` checkpoints the same file
(in the data folder's file system, not /tmp) every `interval` seconds on its own thread. It
prints the commit latency p50/p99/max and how many commits waited more than 2 ms: with a 1 s
interval each checkpoint flushes about 2.5 MB and a commit that lands in its fsync waits
5-8 ms; with 0.25 s the flushes are small and the waits were gone (max 0.9-2.3 ms).
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from kmrules.store.checkpoint import WalCheckpointer  # noqa: E402


def run(interval: float, seconds: float, folder: Path) -> str:
    path = folder / f"bench-{uuid.uuid4().hex[:8]}.sqlite"
    writer = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "wal_autocheckpoint = 0"):
        writer.execute(f"PRAGMA {pragma}")
    writer.execute("CREATE TABLE audit (id TEXT PRIMARY KEY, created_at TEXT, request TEXT, response TEXT)")
    writer.execute("CREATE INDEX audit_created_at ON audit (created_at)")
    checkpointer = WalCheckpointer(path, interval=interval).start()
    request, response = "x" * 1500, "y" * 4000
    waits: list[float] = []
    start = time.perf_counter()
    n = 0
    try:
        while time.perf_counter() - start < seconds:
            due = start + n * 0.002
            n += 1
            if (ahead := due - time.perf_counter()) > 0:
                time.sleep(ahead)
            began = time.perf_counter()
            writer.execute("INSERT INTO audit VALUES (?, ?, ?, ?)", (uuid.uuid4().hex, time.time(), request, response))
            waits.append(time.perf_counter() - began)
    finally:
        checkpointer.stop()
        writer.close()
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    waits.sort()
    slow = [w for w in waits if w > 0.002]
    return (
        f"interval {interval:5.2f} s: {len(waits)} commits, p50 {waits[len(waits) // 2] * 1e6:4.0f} µs, "
        f"p99 {waits[int(len(waits) * 0.99)] * 1e3:5.2f} ms, max {waits[-1] * 1e3:5.2f} ms; "
        f"{len(slow)} waited > 2 ms ({sum(slow) * 1e3:.0f} ms in all); {checkpointer.checkpoints} checkpoints"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--intervals", default="0.25,1.0")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--folder", type=Path, default=ROOT / "data", help="where the database file lives")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-wal-", dir=args.folder))
    try:
        for _ in range(args.rounds):
            for interval in (float(x) for x in args.intervals.split(",")):
                print(run(interval, args.seconds, scratch), flush=True)
    finally:
        shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
