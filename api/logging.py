"""Structured JSON logs: one object per line, every request line with its request id.

Why so strict about content: a request carries birth dates, nationalities and salaries. The
API never logs bodies or query strings, only the method, the route template, the status, the
duration, the caller's role and the request id; `extra` fields outside an allow-list are
dropped, so a careless `log.info(..., extra={"case": ...})` cannot leak a case into the log,
and an exception is logged as its type and frames without its message (which may quote input).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

SAFE_FIELDS = (
    "request_id",
    "method",
    "route",
    "status",
    "duration_ms",
    "role",
    "error",
    "decision_id",
    "outcome",
    "idempotent_replay",
    "host",
    "port",
    "workers",
    "database",
)
"""The only `extra` attributes a log line may carry (no case data among them)."""


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object: ts, level, logger, msg, the safe extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in SAFE_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            kind, _, tb = record.exc_info
            # the frames and the type, not the message: an exception's text may quote input
            out["exc_type"] = f"{kind.__module__}.{kind.__qualname__}"
            out["traceback"] = "".join(traceback.format_tb(tb))
        return json.dumps(out, default=str)


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A logging dictConfig for our loggers and uvicorn's (uvicorn's access log is off: we log
    requests ourselves, without client addresses or query strings)."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": handler},
        "loggers": {
            "kmrules": {"handlers": ["json"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["json"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["json"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def configure(level: str = "INFO") -> None:
    """Install JSON logging for the kmrules loggers if nothing configured them yet."""
    logger = logging.getLogger("kmrules")
    logger.setLevel(level)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False
