"""SQLite WAL checkpoints on a background thread, so that no decision waits for one.

Why: in WAL mode SQLite copies the log back into the database file (a checkpoint, with an
fsync) inside whichever commit crosses 1,000 pages. On this machine that fsync took 20-200 ms,
and because decisions run on the event loop, every request queued behind it waited too:
measured over 3,000 decisions, 27-29 took more than 8 ms with automatic checkpoints and 2
without. The service turns automatic checkpoints off on its own connections
(`make_engine(..., sqlite_autocheckpoint=0)`) and runs a PASSIVE checkpoint every `interval`
seconds here; PASSIVE never blocks readers or writers. With `synchronous = NORMAL` the WAL is
made durable at checkpoints, so `interval` also bounds what a power cut could lose.

Why every 0.25 s: a commit that lands while the checkpoint fsyncs waits for the file system.
At 500 decisions/s a 1 s interval flushed ~2.5 MB per checkpoint and such commits waited
5-8 ms (a few times per 10 s, each holding up the requests queued behind it: the SQLite
server's p99 at 500/s reached 10-14 ms in some runs); at 0.25 s the flushes are small and
those waits were gone (`benchmarks/bench_wal_checkpoint.py`: max commit 0.9-2.3 ms against
5.7-25.8 ms).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("kmrules.store")

DEFAULT_INTERVAL_SECONDS = 0.25


class WalCheckpointer:
    """Checkpoints one SQLite database file every `interval` seconds until stopped."""

    def __init__(self, path: Path, *, interval: float = DEFAULT_INTERVAL_SECONDS, busy_timeout_ms: int = 5000) -> None:
        self._path = path
        self._interval = interval
        self._busy_timeout_ms = busy_timeout_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kmrules-wal-checkpoint:{path.name}", daemon=True)
        self.checkpoints = 0
        """Checkpoints run so far (for tests and health checks)."""

    def start(self) -> WalCheckpointer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread after one last checkpoint."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def checkpoint(self) -> None:
        """One PASSIVE checkpoint now, on a connection of its own (sqlite3 releases the GIL)."""
        connection = sqlite3.connect(self._path, isolation_level=None, timeout=self._busy_timeout_ms / 1000)
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            connection.close()
        self.checkpoints += 1

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(self._interval)
            try:
                self.checkpoint()
            except sqlite3.Error as exc:  # the next round tries again; a lasting fault shows in the log
                log.warning("WAL checkpoint of %s failed: %s", self._path.name, exc)
            if stopping:
                return
