"""Instructions per POST /v1/decisions, counted by valgrind: a figure the machine's load does not move.

Run: .venv/bin/python benchmarks/bench_instructions.py [--decisions 300] [--variant baseline]

Wall-clock figures on a shared 2-core machine moved by a factor of two between sessions;
callgrind counts the instructions executed, the same for the same code and inputs. The app is
driven in-process (the real `create_app`, SQLite in a temporary folder, the bench's distinct
first applications of 2024), once with no decisions and once with N: the difference over N
is the cost of one decision through the ASGI app, the rule core, the ledger and the audit log
(uvicorn's HTTP parsing is not included). Needs `valgrind` on PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def drive(decisions: int, variant: str) -> None:
    """Inside valgrind: build the app, warm it up, then decide `decisions` requests."""
    import logging

    from bench_api import request_body

    from api.app import create_app
    from api.settings import Settings

    os.environ["KMRULES_DATA_DIR"] = tempfile.mkdtemp(prefix="kmrules-instr-")
    app = create_app(Settings.resolve())
    logging.getLogger("kmrules").handlers[0].setStream(open(os.devnull, "w"))  # noqa: SIM115
    key = app.state.ctx.keys.create("caseworker")[0]
    headers = [(b"host", b"x"), (b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json")]
    bodies = [json.dumps(request_body(n, variant, "instr")).encode() for n in range(20 + decisions)]

    async def one(body: bytes) -> None:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/decisions",
            "raw_path": b"/v1/decisions",
            "query_string": b"",
            "root_path": "",
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        statuses: list[int] = []

        async def receive() -> dict[str, Any]:
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)
        if statuses != [200]:
            raise SystemExit(f"decision answered {statuses}")

    async def main() -> None:
        async with app.router.lifespan_context(app):
            for body in bodies:
                await one(body)

    asyncio.run(main())


def counted(decisions: int, variant: str) -> int:
    """Instructions of one run of `drive` under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/out",
                sys.executable,
                __file__,
                "--inside",
                str(decisions),
                "--variant",
                variant,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"valgrind run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=300)
    parser.add_argument("--variant", default="baseline")
    parser.add_argument("--inside", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside is not None:
        drive(args.inside, args.variant)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    base = counted(0, args.variant)
    loaded = counted(args.decisions, args.variant)
    per = (loaded - base) / args.decisions
    print(f"POST /v1/decisions in-process, variant {args.variant}: {per / 1e6:.2f} M instructions per decision")
    print(f"  ({args.decisions} decisions: {loaded:,} instructions; start-up and 20 warm-up decisions: {base:,})")


if __name__ == "__main__":
    main()
