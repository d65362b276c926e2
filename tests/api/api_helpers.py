"""Helpers for the API tests: rules copies, request builders, real server processes, PostgreSQL."""

from __future__ import annotations

import copy
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from api.examples import DECISION_REQUEST
from kmrules.rulebook import DEFAULT_RULES_DIR
from kmrules.store.database import make_engine

SMALL_QUOTA_LIMIT = 25
SMALL_QUOTA = "test_small_quota"
PG_ENV = "KMRULES_TEST_POSTGRES_URL"

_VARIANT = """\
variant:
  id: {quota}
  title: Test quota of {limit} first admissions in 2024
  description: A small hard quota so tests can fill it.
  seed_sections: ["2.11"]
  legal_basis: [{{seed: "§2.11"}}]
quotas:
  - id: {quota}
    title: Test quota {limit}
    scheme: knowledge_migrant
    kind: quota
    limit: {limit}
    period: year
    segment: {{application_kind: first}}
    valid_from: 2024-01-01
    valid_until: 2024-12-31
    seed_section: "2.11"
    legal_basis: [{{seed: "§2.11"}}]
"""


def make_rules_copy(folder: Path, limit: int) -> Path:
    """The package's rules/ copied to `folder`, plus a variant with a small quota."""
    target = folder / "rules"
    shutil.copytree(DEFAULT_RULES_DIR, target)
    (target / "variants" / f"{SMALL_QUOTA}.yaml").write_text(_VARIANT.format(quota=SMALL_QUOTA, limit=limit))
    return target


def granted_request(n: int, *, variant: str = SMALL_QUOTA, case_id: str | None = None) -> dict[str, Any]:
    """A first application of 2024 the criteria grant; `n` makes the case distinct."""
    body = copy.deepcopy(DECISION_REQUEST)
    body["variant"] = variant
    body["case"]["application_date"] = "2024-03-01"
    body["case"]["job"]["gross_monthly_salary"] = 6000 + n
    if case_id is not None:
        body["case_id"] = case_id
    return body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A `kmrules serve` subprocess on 127.0.0.1."""

    process: subprocess.Popen[str]
    port: int
    log_path: Path
    admin_key: str | None = None
    stdout_lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs (the crash case)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def serve_command(*args: str) -> list[str]:
    """`kmrules serve ...` run with this interpreter (no reliance on PATH)."""
    return [sys.executable, "-c", "from kmrules.cli import main; main()", "serve", *args]


def start_server(
    tmp: Path,
    *,
    data_dir: Path | None = None,
    database_url: str | None = None,
    rules_dir: Path | None = None,
    workers: int = 1,
    wait: float = 60.0,
) -> Server:
    """Start `kmrules serve` on a free port and wait for /healthz; stdout is parsed for a first key."""
    port = free_port()
    args = ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    if database_url is not None:
        args += ["--database-url", database_url]
    if rules_dir is not None:
        args += ["--rules", str(rules_dir)]
    log_path = tmp / f"server-{port}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMRULES_")}
    process = subprocess.Popen(
        serve_command(*args),
        stdout=subprocess.PIPE,
        stderr=log_path.open("w"),
        text=True,
        env=env,
        start_new_session=True,  # its own process group: kill() reaches uvicorn's workers too
    )
    server = Server(process, port, log_path)
    deadline = time.monotonic() + wait
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), False)
    while time.monotonic() < deadline:
        for line in iter(process.stdout.readline, ""):
            server.stdout_lines.append(line.rstrip("\n"))
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    else:
        server.kill()
        raise AssertionError(f"server did not become healthy in {wait}s:\n{server.log()}")
    for line in iter(process.stdout.readline, ""):
        server.stdout_lines.append(line.rstrip("\n"))
    marker = [i for i, line in enumerate(server.stdout_lines) if "created an admin key" in line]
    if marker:
        server.admin_key = server.stdout_lines[marker[0] + 1].strip()
    return server


# -- PostgreSQL --------------------------------------------------------------------------


def pg_base_url() -> str:
    """The configured server, or skip with a visible reason."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set: PostgreSQL API tests skipped")
    return url


def create_pg_schema(base: str) -> str:
    """A fresh schema; fails loudly when the configured server is unreachable."""
    name = f"kmrules_api_{uuid.uuid4().hex[:10]}"
    engine = make_engine(base)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
    except Exception as exc:
        pytest.fail(f"{PG_ENV} is set but PostgreSQL is unreachable or unusable: {exc}", pytrace=False)
    finally:
        engine.dispose()
    return name


def drop_pg_schema(base: str, name: str) -> None:
    engine = make_engine(base)
    try:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    finally:
        engine.dispose()


def pg_schema_url(base: str, schema: str) -> str:
    """The server URL with every connection's search_path set to `schema`."""
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)
