"""Load benchmark of POST /v1/decisions against a real `kmrules serve` on 127.0.0.1.

Run: .venv/bin/python benchmarks/bench_api.py [--duration 8] [--rates 100,500] [--concurrency 32]
        [--client both|raw|httpx] [--variants baseline,km_quota_2024] [--postgres-url URL]
        [--sqlite-workers 1] [--pg-workers 2] [--repeat 1]

Starts the server itself: first the embedded default (SQLite, 1 worker unless
--sqlite-workers), then, when a PostgreSQL URL is given (or KMRULES_TEST_POSTGRES_URL is set),
PostgreSQL with 2 workers in a fresh schema. For each server and each load generator it runs:

  paced R/s   requests scheduled at R per second (open loop, at most --concurrency in flight):
              the latency a caller sees at that load. Latency counts from the *scheduled* send
              time, so a server that falls behind is charged for the queueing (no coordinated
              omission). When the backlog passes 2 s of requests, new ones are not sent
              ("shed"): the phase stays bounded and the shed count says the rate was not held.
  saturation  --concurrency requests always in flight: the most the server does per second.

Load generators (bounded async clients): `httpx` (httpx.AsyncClient, bounded pool) and `raw`
(a minimal keep-alive HTTP/1.1 client). Client and server share this machine's two cores and
httpx costs ~2 ms of CPU per request here, so the raw client shows the server's capacity.

Every request is a distinct first application of 2024 with its own case id and writes an
audit row; under variant km_quota_2024 (limit 22,000) a granted one also takes a quota place in
the same transaction, so every such decision locks the one counter row of the quota's year.
Server logs are on (info), as in production. Each phase also prints the server's CPU time per
request (all its processes, from /proc): on this machine the same request costs about twice
the CPU at 100/s as at 500/s, so compare that column before blaming the code for a change.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.examples import DECISION_REQUEST  # noqa: E402

WRITE_CONCURRENCY: int | None = None
"""--write-concurrency: the server's KMRULES_WRITE_CONCURRENCY (None: its default)."""


@dataclass
class Result:
    """One phase's figures."""

    name: str
    sent: int
    ok: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    late: int = 0
    shed: int = 0
    server_cpu_ms: float | None = None
    """CPU time of the server's processes per answered request (Linux /proc), if known."""
    steal_pct: float | None = None
    """Share of the machine's CPU time stolen by the hypervisor during the phase, if known."""

    def p99(self) -> float:
        return _p99(sorted(self.latencies_ms) or [float("nan")])

    def line(self) -> str:
        lat = sorted(self.latencies_ms) or [float("nan")]
        p50 = statistics.median(lat)
        p99 = _p99(lat)
        extra = f", late >10 ms {self.late}, shed {self.shed}" if self.name.startswith("paced") else ""
        if self.server_cpu_ms is not None:
            extra += f"; server CPU {self.server_cpu_ms:.2f} ms/request"
        if self.steal_pct is not None:
            extra += f"; steal {self.steal_pct:.0f}%"
        return (
            f"  {self.name:<14} {self.ok / self.seconds:7.1f} req/s  p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  "
            f"max {lat[-1]:8.2f} ms  ({self.ok} ok, {self.errors} errors in {self.seconds:.1f} s{extra})"
        )


def machine_speed_ms() -> float:
    """A fixed pure-Python workload (the fastest of 5), timed before each server: the machine's
    state moves every figure here by up to 3x, and this says which state a run was in (lower
    is faster; compare it between runs, not with other machines)."""
    body = json.dumps(request_body(0, "baseline", "speed"))
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(2000):
            json.loads(body)
            sorted(str(i) for i in range(20))
        best = min(best, time.perf_counter() - start)
    return best * 1000


def steal_share() -> tuple[int, int] | None:
    """(steal, all) CPU ticks of the whole machine so far (Linux /proc/stat; None elsewhere):
    time the hypervisor gave this machine's cores to someone else."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def _p99(lat: list[float]) -> float:
    """The 99th percentile of sorted latencies (the nearest rank below)."""
    return lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def run_async(coro: Any) -> Any:
    """Run a phase on uvloop (installed with uvicorn[standard]): it halves the client's CPU.

    The collector is off during a phase: a full pass over the client's prebuilt bodies would
    stall the client, and the stall would be charged to the server's latency."""
    import uvloop

    gc.collect()
    gc.disable()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    finally:
        gc.enable()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(data_dir: Path, database_url: str | None, workers: int) -> tuple[subprocess.Popen[str], str, str]:
    """`kmrules serve` on a free port; returns (process, base url, the admin key it printed)."""
    port = free_port()
    cmd = [sys.executable, "-c", "from kmrules.cli import main; main()", "serve", "--port", str(port)]
    cmd += ["--data-dir", str(data_dir), "--workers", str(workers)]  # info logs, as in production
    if database_url:
        cmd += ["--database-url", database_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMRULES_")}
    if WRITE_CONCURRENCY is not None:
        env["KMRULES_WRITE_CONCURRENCY"] = str(WRITE_CONCURRENCY)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, start_new_session=True
    )
    assert proc.stdout is not None
    lines: list[str] = []
    while not any(line.startswith("kmrules API on") for line in lines):
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"server exited early: {lines}")
        lines.append(line.strip())
    key = next(lines[i + 1] for i, line in enumerate(lines) if "created an admin key" in line)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url, key
        except httpx.TransportError:
            time.sleep(0.1)
    stop(proc)
    raise SystemExit("server did not become healthy")


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def request_body(n: int, variant: str, run: str) -> dict[str, Any]:
    """A distinct, valid first application of 2024 (salary and birth date vary with n)."""
    body = copy.deepcopy(DECISION_REQUEST)
    body["variant"] = variant
    body["case_id"] = f"bench-{run}-{n}"
    case = body["case"]
    case["application_date"] = f"2024-{1 + n % 12:02d}-{1 + n % 28:02d}"
    case["applicant"]["birth_date"] = f"{1970 + n % 30}-{1 + n % 12:02d}-{1 + n % 28:02d}"
    case["job"]["gross_monthly_salary"] = 3000 + (n * 37) % 5000
    return body


class RawClient:
    """A minimal HTTP/1.1 keep-alive client: a pool of `size` connections, one request each at a
    time. It costs ~0.1 ms of CPU per request where httpx costs ~2 ms on this machine, so the
    server, not the client, is what gets measured on two shared cores."""

    def __init__(self, url: str, headers: dict[str, str], size: int) -> None:
        host, port = url.removeprefix("http://").split(":")
        self._addr = (host, int(port))
        self._head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self._size = size

    async def __aenter__(self) -> RawClient:
        for _ in range(self._size):
            self._pool.put_nowait(await asyncio.open_connection(*self._addr))
        return self

    async def __aexit__(self, *_: object) -> None:
        while not self._pool.empty():
            self._pool.get_nowait()[1].close()

    async def post(self, path: str, body: bytes) -> int:
        reader, writer = await self._pool.get()
        try:
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: bench\r\n{self._head}Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            length = next(int(x.split(b":")[1]) for x in lines if x.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            self._pool.put_nowait((reader, writer))
            return int(lines[0].split()[1])
        except BaseException:
            writer.close()
            self._pool.put_nowait(await asyncio.open_connection(*self._addr))
            raise


class HttpxClient:
    """httpx.AsyncClient with a bounded connection pool."""

    def __init__(self, url: str, headers: dict[str, str], size: int) -> None:
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        self._client = httpx.AsyncClient(base_url=url, limits=limits, timeout=30, headers=headers)

    async def __aenter__(self) -> HttpxClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.aclose()

    async def post(self, path: str, body: bytes) -> int:
        return (await self._client.post(path, content=body)).status_code


async def run_phase(
    name: str, url: str, key: str, variant: str, duration: float, concurrency: int, rate: float, client_kind: str
) -> Result:
    run = uuid.uuid4().hex[:8]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    ok = errors = late = sent = shed = 0
    gate = asyncio.Semaphore(concurrency)
    factory = RawClient if client_kind == "raw" else HttpxClient
    async with factory(url, headers, concurrency) as client:
        # bodies are built before the clock starts: the client's CPU is the server's too
        ready = [json.dumps(request_body(n, variant, run)).encode() for n in range(int((rate or 1500) * duration) + 64)]

        async def one(n: int, scheduled: float) -> None:
            nonlocal ok, errors, late
            body = ready[n] if n < len(ready) else json.dumps(request_body(n, variant, run)).encode()
            async with gate:
                start = time.perf_counter()
                if start - scheduled > 0.010:
                    late += 1
                try:
                    good = await client.post("/v1/decisions", body) == 200
                except (httpx.HTTPError, OSError, asyncio.IncompleteReadError):
                    good = False
                done = time.perf_counter()
            if good:
                ok += 1
                latencies.append((done - (scheduled if rate else start)) * 1000)
            else:
                errors += 1

        t0 = time.perf_counter()
        tasks: list[asyncio.Task[None]] = []
        if rate:
            interval, slot = 1 / rate, 0
            backlog_cap = max(concurrency, int(2 * rate))
            while (now := time.perf_counter()) - t0 < duration:
                due = t0 + slot * interval
                slot += 1
                if due > now:
                    await asyncio.sleep(due - now)
                if sent - ok - errors >= backlog_cap:
                    shed += 1
                    continue
                tasks.append(asyncio.create_task(one(sent, due)))
                sent += 1
            await asyncio.gather(*tasks)
        else:

            async def worker() -> None:
                nonlocal sent
                while time.perf_counter() - t0 < duration:
                    sent += 1
                    await one(sent, time.perf_counter())

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - t0
    return Result(name, sent, ok, errors, seconds, latencies, late, shed)


def server_cpu_seconds(group: int) -> float | None:
    """User + system CPU of every process in the server's process group (Linux /proc; None
    elsewhere). The same code costs more CPU per request on a mostly idle process here, so
    this separates the machine's state from the server's work."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    total = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == group:  # pgrp: the server was started in a session of its own
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def bench(label: str, data_dir: Path, database_url: str | None, workers: int, args: argparse.Namespace) -> None:
    proc, url, key = start_server(data_dir, database_url, workers)
    clients = ["raw", "httpx"] if args.client == "both" else [args.client]
    try:
        run_async(run_phase("warm-up", url, key, args.variants[0], 2.0, 8, 0, "raw"))
        print(
            f"{label}: {workers} worker(s), concurrency {args.concurrency}, {args.duration:g} s per phase; "
            f"machine speed {machine_speed_ms():.1f} ms (fixed Python workload, lower is faster)"
        )
        for kind in clients:
            for variant in args.variants:
                print(f" client {kind}, variant {variant}:")
                phases = [(f"paced {r:g}/s", r) for r in args.rates] + [("saturation", 0.0)]
                for name, rate in phases:
                    p99s: list[float] = []
                    for run in range(args.repeat if rate else 1):
                        label = f"{name} #{run + 1}" if args.repeat > 1 and rate else name
                        before, ticks = server_cpu_seconds(proc.pid), steal_share()
                        result = run_async(
                            run_phase(label, url, key, variant, args.duration, args.concurrency, rate, kind)
                        )
                        used, ticks_after = server_cpu_seconds(proc.pid), steal_share()
                        if before is not None and used is not None and result.ok:
                            result.server_cpu_ms = (used - before) * 1000 / result.ok
                        if ticks is not None and ticks_after is not None and ticks_after[1] > ticks[1]:
                            result.steal_pct = 100 * (ticks_after[0] - ticks[0]) / (ticks_after[1] - ticks[1])
                        print(result.line())
                        p99s.append(result.p99())
                        sys.stdout.flush()
                    if len(p99s) > 1:
                        print(
                            f"  {name}: p99 over {len(p99s)} runs: median {statistics.median(p99s):.2f} ms, worst {max(p99s):.2f} ms"
                        )
    finally:
        stop(proc)


def postgres_schema(base: str) -> tuple[str, str]:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from kmrules.store.database import make_engine

    name = f"kmrules_bench_{uuid.uuid4().hex[:8]}"
    engine = make_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    engine.dispose()
    url = make_url(base).update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(hide_password=False)
    return name, url


def drop_schema(base: str, name: str) -> None:
    from sqlalchemy import text

    from kmrules.store.database import make_engine

    engine = make_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per phase")
    parser.add_argument(
        "--rates",
        type=lambda text: [float(r) for r in text.split(",") if r],
        default=[100.0, 500.0],
        help="paced phases, requests per second (comma-separated; default 100,500)",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at most")
    parser.add_argument(
        "--variants",
        type=lambda text: [v for v in text.split(",") if v],
        default=["baseline", "km_quota_2024"],
        help="variants to load, in turn (default: baseline = audit row only; km_quota_2024 = quota place + audit row)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("KMRULES_TEST_POSTGRES_URL"),
        help="also benchmark PostgreSQL with 2 workers (default: $KMRULES_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--pg-workers", type=int, default=2)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each paced phase N times in a row and print the median and worst p99 (the machine's state moves figures)",
    )
    parser.add_argument(
        "--sqlite-workers", type=int, default=1, help="SQLite server's workers (default 1: the embedded default)"
    )
    parser.add_argument(
        "--client", choices=["raw", "httpx", "both"], default="both", help="load generator (default: both, in turn)"
    )
    parser.add_argument(
        "--write-concurrency",
        type=int,
        default=None,
        help="server's KMRULES_WRITE_CONCURRENCY (default: the server's default, 0 = decisions on the event loop)",
    )
    args = parser.parse_args()
    global WRITE_CONCURRENCY
    WRITE_CONCURRENCY = args.write_concurrency
    print(f"POST /v1/decisions on 127.0.0.1, {os.cpu_count()} cores, client and server on this machine")
    with tempfile.TemporaryDirectory(prefix="kmrules-bench-") as tmp:
        bench("SQLite (embedded default)", Path(tmp) / "sqlite", None, args.sqlite_workers, args)
        if args.postgres_url:
            name, url = postgres_schema(args.postgres_url)
            try:
                bench("PostgreSQL", Path(tmp) / "pg", url, args.pg_workers, args)
            finally:
                drop_schema(args.postgres_url, name)
        else:
            print("PostgreSQL: skipped (no --postgres-url and KMRULES_TEST_POSTGRES_URL unset)")


if __name__ == "__main__":
    main()
