"""SQLite WAL checkpoints run on the service's own thread, never inside a decision's commit."""

from __future__ import annotations

import copy
import json
import logging
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from kmrules.service import DecisionService
from kmrules.store.checkpoint import WalCheckpointer
from kmrules.store.database import sqlite_path

EXAMPLE = json.loads((Path(__file__).parent.parent / "examples" / "knowledge_migrant_2023.json").read_text())


def _wal_frames(path: Path) -> tuple[int, int]:
    """(frames in the WAL, frames already copied back) as a no-op PASSIVE checkpoint reports them."""
    with sqlite3.connect(path, isolation_level=None) as conn:
        busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0
    return frames, copied


def test_decisions_do_not_checkpoint_and_the_thread_does(tmp_path: Path) -> None:
    service = DecisionService.embedded(tmp_path)
    path = tmp_path / "kmrules.sqlite"
    checkpointer = service._checkpointer
    assert checkpointer is not None
    checkpointer.stop()  # no background round during the measurement; checkpoint() runs by hand
    try:
        with service._engine.connect() as conn:
            assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 0
        for n in range(30):
            request = copy.deepcopy(EXAMPLE)
            request["case_id"] = f"wal-{n}"
            service.decide(request)
        wal = path.with_name(path.name + "-wal")
        assert wal.exists() and wal.stat().st_size > 0
        before = checkpointer.checkpoints
        checkpointer.checkpoint()
        assert checkpointer.checkpoints == before + 1
        frames, copied = _wal_frames(path)
        assert frames > 0 and copied == frames  # everything the decisions wrote is in the file
    finally:
        service.close()


def test_the_thread_checkpoints_on_its_own_and_once_more_when_stopped(tmp_path: Path) -> None:
    service = DecisionService.embedded(tmp_path)
    checkpointer = service._checkpointer
    assert checkpointer is not None
    service.decide(copy.deepcopy(EXAMPLE))
    service.close()
    assert checkpointer.checkpoints >= 1  # the last round runs on stop, whatever the interval


def test_a_failing_checkpoint_is_logged_and_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    checkpointer = WalCheckpointer(tmp_path / "no-such-folder" / "x.sqlite", interval=0.01)
    with caplog.at_level(logging.WARNING, logger="kmrules.store"):
        checkpointer.start()
        checkpointer.stop()
    assert checkpointer.checkpoints == 0
    assert any("WAL checkpoint of x.sqlite failed" in r.getMessage() for r in caplog.records)


def test_only_sqlite_files_get_a_checkpointer(tmp_path: Path) -> None:
    assert sqlite_path(f"sqlite:///{tmp_path}/a.sqlite") == (tmp_path / "a.sqlite").resolve()
    assert sqlite_path("sqlite://") is None
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql+psycopg://postgres@127.0.0.1:5432/test") is None
