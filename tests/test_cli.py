"""The `kmrules decide` command: a readable table, exact JSON, and clear errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import kmrules

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "knowledge_migrant_2023.json"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kmrules", *args], capture_output=True, text=True, cwd=ROOT, check=False)


def test_decide_json_is_the_decision() -> None:
    out = _run("decide", str(EXAMPLE), "--json")
    assert out.returncode == 0, out.stderr
    expected = kmrules.decide(json.loads(EXAMPLE.read_text())).model_dump(mode="json")
    assert json.loads(out.stdout) == expected


def test_decide_table_names_rules_values_and_outcome() -> None:
    out = _run("decide", str(EXAMPLE))
    assert out.returncode == 0, out.stderr
    assert "GRANTED" in out.stdout and "KM-SALARY-30PLUS" in out.stdout and "5008" in out.stdout


def test_bad_request_gives_a_clear_error_and_non_zero_exit(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"scheme": "knowledge_migrant", "case": {"application_date": "2023-03-15", "job": {"gross_monthly_salary": "lots"}}}))
    out = _run("decide", str(bad))
    assert out.returncode == 2
    assert "case.job.gross_monthly_salary" in out.stderr
    not_json = tmp_path / "x.json"
    not_json.write_text("{oops")
    out = _run("decide", str(not_json))
    assert out.returncode != 0 and "not valid JSON" in out.stderr
    out = _run("decide", str(tmp_path / "missing.json"))
    assert out.returncode != 0 and "no such file" in out.stderr


def test_rules_option_points_at_another_rules_directory(tmp_path: Path) -> None:
    out = _run("decide", str(EXAMPLE), "--rules", str(tmp_path))
    assert out.returncode == 2 and "no facts.yaml" in out.stderr
