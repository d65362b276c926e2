"""`kmrules serve` as a real uvicorn process: first start, safety refusals, decisions, JSON logs,
and a SIGKILL in the middle of a load that leaves the audit log and ledger whole."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import SMALL_QUOTA, SMALL_QUOTA_LIMIT, Server, granted_request, serve_command, start_server
from sqlalchemy import select

from api.examples import DECISION_REQUEST
from kmrules.quota.ledger import Ledger
from kmrules.store.database import default_sqlite_url, make_engine
from kmrules.store.tables import audit_log, quota_places


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, rules_copy: Path) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("served")
    running = start_server(tmp, data_dir=tmp / "data", rules_dir=rules_copy)
    yield running
    running.stop()


def test_first_start_prints_an_admin_key_that_works(server: Server) -> None:
    assert server.admin_key, server.stdout_lines
    assert server.stdout_lines[-1].startswith("kmrules API on http://127.0.0.1:")
    response = httpx.post(f"{server.url}/v1/decisions", json=DECISION_REQUEST, headers=server.headers(), timeout=30)
    assert response.status_code == 200 and response.json()["outcome"] == "granted"
    decision_id = response.json()["id"]
    back = httpx.get(f"{server.url}/v1/decisions/{decision_id}", headers=server.headers(), timeout=30)
    assert back.json() == response.json()
    assert httpx.get(f"{server.url}/v1/schemes", timeout=30).status_code == 401


def test_second_start_creates_no_key(server: Server, tmp_path: Path, rules_copy: Path) -> None:
    data_dir = server.log_path.parent / "data"
    port_server = start_server(tmp_path, data_dir=data_dir, rules_dir=rules_copy)
    try:
        assert port_server.admin_key is None
        assert httpx.get(f"{port_server.url}/v1/variants", headers=server.headers(), timeout=30).status_code == 200
    finally:
        port_server.stop()


def test_logs_are_json_lines_without_case_data(server: Server) -> None:
    body = json.loads(json.dumps(DECISION_REQUEST))
    body["case"]["applicant"].update(birth_date="1979-02-28", nationality="VN")
    marker = f"req-{uuid.uuid4().hex[:12]}"
    httpx.post(
        f"{server.url}/v1/decisions", json=body, headers={**server.headers(), "X-Request-ID": marker}, timeout=30
    )
    deadline = time.monotonic() + 5
    while marker not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    mine = [entry for entry in lines if entry.get("request_id") == marker]
    assert mine and mine[0]["route"] == "/v1/decisions" and mine[0]["status"] == 200
    assert "1979-02-28" not in server.log() and '"VN"' not in server.log()


def test_non_loopback_bind_without_keys_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        serve_command("--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path / "data")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to bind 0.0.0.0" in result.stderr and "no API keys" in result.stderr


def test_rule_file_error_is_a_start_up_failure(tmp_path: Path, rules_copy: Path) -> None:
    broken = tmp_path / "rules"
    subprocess.run(["cp", "-r", str(rules_copy), str(broken)], check=True)
    path = broken / "variants" / f"{SMALL_QUOTA}.yaml"
    path.write_text(path.read_text().replace("limit:", "limt:"))
    result = subprocess.run(
        serve_command("--port", "0", "--data-dir", str(tmp_path / "data"), "--rules", str(broken)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"{SMALL_QUOTA}.yaml" in result.stderr.replace("\n", "")


# -- SIGKILL mid-request --------------------------------------------------------------


async def _fire(
    url: str, headers: dict[str, str], bodies: list[tuple[str, dict[str, Any]]], concurrency: int
) -> dict[str, int]:
    """POST every body (with its idempotency key); returns key -> status (0: connection lost)."""
    statuses: dict[str, int] = {}
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def one(key: str, body: dict[str, Any]) -> None:
            async with gate:
                try:
                    response = await client.post(
                        "/v1/decisions", json=body, headers={**headers, "Idempotency-Key": key}
                    )
                    statuses[key] = response.status_code
                except httpx.TransportError:
                    statuses[key] = 0

        await asyncio.gather(*(one(k, b) for k, b in bodies))
    return statuses


def _check_store(database_url: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Every audit row complete and parseable; every active place has its audit row; counters match."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(select(audit_log)).mappings()]
            places = [
                dict(r)
                for r in conn.execute(select(quota_places).where(quota_places.c.released_at.is_(None))).mappings()
            ]
        problems = Ledger(engine).verify()
    finally:
        engine.dispose()
    for row in rows:
        json.loads(row["request_json"])
        assert json.loads(row["response_json"])["outcome"] in ("granted", "refused", "undetermined")
        assert row["id"] and row["created_at"] and row["actor_role"]
    audited = {r["case_id"] for r in rows if r["kind"] == "decision"}
    orphans = [p["case_id"] for p in places if p["case_id"] not in audited]
    assert not orphans, f"quota places without an audit row: {orphans}"
    return rows, problems


def test_sigkill_mid_load_leaves_nothing_half_written(tmp_path: Path, rules_copy: Path) -> None:
    data_dir = tmp_path / "data"
    url = default_sqlite_url(data_dir)
    bodies = [(f"kill-{i}", granted_request(i, case_id=f"kill-case-{i}")) for i in range(300)]
    first = start_server(tmp_path, data_dir=data_dir, rules_dir=rules_copy)
    headers = first.headers()

    async def load_then_kill() -> dict[str, int]:
        task = asyncio.create_task(_fire(first.url, headers, bodies, concurrency=32))
        while True:  # kill once decisions are being written, with many still in flight
            await asyncio.sleep(0.02)
            rows, _ = await asyncio.to_thread(_check_store, url)
            if len(rows) >= 15:
                break
        await asyncio.to_thread(first.kill)
        return await task

    statuses = asyncio.run(load_then_kill())
    lost = [k for k, s in statuses.items() if s == 0]
    assert lost, "the kill came too late: no request was cut off"
    rows, problems = _check_store(url)
    assert problems == [], problems
    assert len(rows) < len(bodies)

    second = start_server(tmp_path, data_dir=data_dir, rules_dir=rules_copy)
    try:
        retried = asyncio.run(_fire(second.url, headers, bodies, concurrency=16))
        assert set(retried.values()) == {200}
    finally:
        second.stop()
    rows, problems = _check_store(url)
    assert problems == []
    by_key = [r["idempotency_key"] for r in rows if r["kind"] == "decision" and r["idempotency_key"]]
    assert sorted(by_key) == sorted(k for k, _ in bodies)  # each request audited exactly once
    engine = make_engine(url)
    with engine.connect() as conn:
        held = (
            conn.execute(
                select(quota_places.c.case_id).where(
                    quota_places.c.quota_id == SMALL_QUOTA, quota_places.c.released_at.is_(None)
                )
            )
            .scalars()
            .all()
        )
    engine.dispose()
    assert len(held) == len(set(held)) == SMALL_QUOTA_LIMIT


def _wait_until(done: Callable[[], bool], seconds: float) -> None:
    """Poll `done` until it holds or `seconds` pass (the caller asserts what it needs)."""
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.1)


def _decision_statuses(running: Server, count: int) -> set[int]:
    """The statuses of `count` decisions of the worked example."""
    return {
        httpx.post(
            f"{running.url}/v1/decisions", json=DECISION_REQUEST, headers=running.headers(), timeout=30
        ).status_code
        for _ in range(count)
    }


def _started(running: Server) -> int:
    return running.log().count("Started server process")


def test_workers_flag_runs_several_processes(tmp_path: Path, rules_copy: Path) -> None:
    running = start_server(tmp_path, data_dir=tmp_path / "data", rules_dir=rules_copy, workers=2)
    try:
        assert _decision_statuses(running, 10) == {200}
        _wait_until(lambda: _started(running) >= 2, 20)  # /healthz answers as soon as the first worker is up
        assert _started(running) >= 2
    finally:
        running.stop()


def _connections_per_worker(port: int) -> dict[str, int]:
    """Established connections to `port` per server process id, as `ss` reports them."""
    out = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout
    counts: dict[str, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        counts[pid] = counts.get(pid, 0) + 1
    return counts


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs `ss` (iproute2) to see which worker holds a connection")
def test_workers_share_keep_alive_connections(tmp_path: Path, rules_copy: Path) -> None:
    """Each worker listens on its own SO_REUSEPORT socket: 32 keep-alive connections opened at
    once are spread over both (a shared socket gave one worker 24 to 31 of them)."""
    running = start_server(tmp_path, data_dir=tmp_path / "data", rules_dir=rules_copy, workers=2)
    try:
        _wait_until(lambda: _started(running) >= 2, 30)
        clients = [socket.create_connection(("127.0.0.1", running.port), timeout=10) for _ in range(32)]
        try:
            for client in clients:
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            for client in clients:
                assert client.recv(4096).startswith(b"HTTP/1.1 200")
            counts = _connections_per_worker(running.port)
        finally:
            for client in clients:
                client.close()
        assert sum(counts.values()) == 32 and len(counts) == 2, counts
        assert min(counts.values()) >= 4, counts  # hashing 32 connections: fewer than 4 has p < 3e-6
    finally:
        running.stop()


def test_sigterm_to_the_parent_stops_every_worker(tmp_path: Path, rules_copy: Path) -> None:
    running = start_server(tmp_path, data_dir=tmp_path / "data", rules_dir=rules_copy, workers=2)
    try:
        running.process.send_signal(signal.SIGTERM)  # the parent only, not its process group
        assert running.process.wait(timeout=30) == 0

        def group_gone() -> bool:
            try:
                os.killpg(running.process.pid, 0)
            except ProcessLookupError:
                return True
            return False

        _wait_until(group_gone, 30)
        with pytest.raises(ProcessLookupError):
            os.killpg(running.process.pid, 0)
    finally:
        running.kill()


def test_workers_on_a_port_in_use_refuse_to_start(tmp_path: Path, rules_copy: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            serve_command(
                "--port", str(port), "--workers", "2", "--data-dir", str(tmp_path), "--rules", str(rules_copy)
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def _workers_of(parent: int) -> list[int]:
    """The worker processes `kmrules serve --workers N` started (multiprocessing spawn children)."""
    found = subprocess.run(["pgrep", "-P", str(parent), "-f", "multiprocessing.spawn"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


@pytest.mark.skipif(shutil.which("pgrep") is None, reason="needs `pgrep` to find the worker processes")
def test_a_worker_that_dies_is_replaced(tmp_path: Path, rules_copy: Path) -> None:
    running = start_server(tmp_path, data_dir=tmp_path / "data", rules_dir=rules_copy, workers=2)
    try:
        _wait_until(lambda: len(_workers_of(running.process.pid)) >= 2, 30)
        first = _workers_of(running.process.pid)
        assert len(first) == 2, first
        os.kill(first[0], signal.SIGKILL)

        def replaced() -> bool:
            now = _workers_of(running.process.pid)
            return len(now) == 2 and first[0] not in now and _started(running) >= 3

        _wait_until(replaced, 60)
        now = _workers_of(running.process.pid)
        assert len(now) == 2 and first[0] not in now, now
        assert "starting a new one" in running.log()
        assert _decision_statuses(running, 8) == {200}
    finally:
        running.stop()
