"""Server settings: one frozen object, built from CLI options or from the environment.

Why both: `kmrules serve --workers N` hands the app to uvicorn as an import string, so every
worker process rebuilds the same settings from environment variables that `serve` exported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from kmrules.store.database import default_sqlite_url

ENV_DATA_DIR = "KMRULES_DATA_DIR"
ENV_DATABASE_URL = "KMRULES_DATABASE_URL"
ENV_RULES_DIR = "KMRULES_RULES_DIR"
ENV_MAX_BODY_BYTES = "KMRULES_MAX_BODY_BYTES"
ENV_LOG_LEVEL = "KMRULES_LOG_LEVEL"
ENV_WRITE_CONCURRENCY = "KMRULES_WRITE_CONCURRENCY"
ENV_TELEMETRY = "KMRULES_TELEMETRY"

DEFAULT_DATA_DIR = Path("data")
DEFAULT_MAX_BODY_BYTES = 256 * 1024
"""A decision request is about 1 KB; 256 KB leaves room for a compare or what-if body."""
MAX_COMPARE_VARIANTS = 20
"""Each variant of a compare is a full decision: bound the work one request can ask for."""


@dataclass(frozen=True)
class Settings:
    """Everything `create_app` needs; nothing is read from the environment after this."""

    database_url: str
    data_dir: Path = DEFAULT_DATA_DIR
    rules_dir: Path | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_compare_variants: int = MAX_COMPARE_VARIANTS
    log_level: str = "INFO"
    key_cache_seconds: float = 5.0
    """How long a verified key is trusted without asking the database (revocation delay)."""
    write_concurrency: int = 0
    """Where decisions and releases (rules + ledger + audit transaction), and the key lookups
    in front of them, run. 0: on the event loop, one at a time per process, each to
    completion; N > 0: in the thread pool, at most N at once, the others queued first come,
    first served. (A thread pool measured at 500 requests/s on 2 cores: p99 33-150 ms, against
    4-10 ms on the loop, even with a 0.2-0.5 ms GIL switch interval.)
    Why 0: the decision work holds the GIL, so threads add no parallelism; they only overlap
    database waits, while GIL hand-offs between the loop and the worker cost CPU (measured on
    2 cores: ~1 ms more per decision at 8 in flight) and more writers make SQLite writers
    sleep in its busy handler (steps up to 100 ms) and PostgreSQL transactions queue on the
    quota's counter row. The price: while a decision runs (~2 ms), this process answers
    nothing else, and a ledger retry's back-off sleeps on the loop. Scale out with --workers;
    set N > 0 when the database is far away and its round trips dominate."""
    telemetry: bool = False
    """FastAPI's native OpenTelemetry spans, metrics and logs (`FastAPI(telemetry=...)`), for
    an operator who configures OpenTelemetry providers and exporters. Off by default: with
    no provider configured it records nothing, yet FastAPI asks the global tracer, meter and
    logger providers whether one is configured on every request (~2% of a decision's CPU,
    sampled at 500 requests/s). Our own JSON log lines carry the request ids either way."""

    @classmethod
    def resolve(
        cls,
        *,
        data_dir: Path | str | None = None,
        database_url: str | None = None,
        rules_dir: Path | str | None = None,
        log_level: str | None = None,
    ) -> Settings:
        """Explicit values win, then KMRULES_* environment variables, then the embedded defaults."""
        folder = Path(data_dir) if data_dir is not None else Path(os.environ.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR)
        url = database_url or os.environ.get(ENV_DATABASE_URL) or default_sqlite_url(folder.resolve())
        rules = rules_dir if rules_dir is not None else os.environ.get(ENV_RULES_DIR) or None
        body = os.environ.get(ENV_MAX_BODY_BYTES)
        writers = os.environ.get(ENV_WRITE_CONCURRENCY)
        telemetry = os.environ.get(ENV_TELEMETRY)
        return cls(
            database_url=url,
            data_dir=folder,
            rules_dir=Path(rules).resolve() if rules else None,
            max_body_bytes=int(body) if body else DEFAULT_MAX_BODY_BYTES,
            log_level=(log_level or os.environ.get(ENV_LOG_LEVEL) or "INFO").upper(),
            write_concurrency=_count(ENV_WRITE_CONCURRENCY, writers) if writers else 0,
            telemetry=_switch(ENV_TELEMETRY, telemetry) if telemetry else False,
        )

    def to_env(self) -> dict[str, str]:
        """The variables from which `resolve()` in a worker process rebuilds these settings."""
        env = {
            ENV_DATA_DIR: str(self.data_dir.resolve()),
            ENV_DATABASE_URL: self.database_url,
            ENV_MAX_BODY_BYTES: str(self.max_body_bytes),
            ENV_LOG_LEVEL: self.log_level,
            ENV_WRITE_CONCURRENCY: str(self.write_concurrency),
            ENV_TELEMETRY: "1" if self.telemetry else "0",
        }
        if self.rules_dir is not None:
            env[ENV_RULES_DIR] = str(self.rules_dir)
        return env

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests)."""
        return replace(self, **changes)  # type: ignore[arg-type]


def _count(name: str, text: str) -> int:
    """A whole number of 0 or more from an environment variable, or a ValueError naming it."""
    if not text.isdigit():
        raise ValueError(f"{name} must be a whole number of 0 or more, got {text!r}")
    return int(text)


def _switch(name: str, text: str) -> bool:
    """On or off from an environment variable (1/true/yes or 0/false/no), or a ValueError naming it."""
    value = text.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no"):
        return False
    raise ValueError(f"{name} must be 1/true/yes or 0/false/no, got {text!r}")
