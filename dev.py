#!/usr/bin/env python3
"""Bootstrap and run kmrules from a fresh clone with nothing but Python >= 3.11.

    python3 dev.py serve   # the API with its embedded defaults (SQLite in ./data, rules from rules/)
    python3 dev.py test    # the test suite (pytest)

Creates .venv and installs the project (editable, with the dev extras) the first time, and
again whenever pyproject.toml changes. Extra arguments are passed on (e.g. `test -k quota`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".kmrules-installed"


def ensure_installed() -> None:
    """(Re)install when the venv is new or pyproject.toml changed since the last install."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing kmrules and its dependencies into .venv ...", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True, cwd=ROOT)
    STAMP.write_text(digest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"serve", "test"}:
        print(__doc__)
        return 2
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may run on an older Python
        print("kmrules needs Python 3.11 or newer", file=sys.stderr)
        return 2
    ensure_installed()
    command, rest = argv[0], argv[1:]
    if command == "serve":
        args = [str(BIN / "kmrules"), "serve", *rest]
    else:
        args = [str(BIN / "python"), "-m", "pytest", *rest]
    return subprocess.run(args, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
