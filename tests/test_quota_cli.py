"""`kmrules quota status` and `kmrules quota release` on real SQLite and PostgreSQL ledgers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from service_helpers import fresh_database, km_request, make_rules_dir
from typer.testing import CliRunner

from kmrules.cli_quota import register
from kmrules.service import DecisionService
from kmrules.store.database import default_sqlite_url


@pytest.fixture(scope="module")
def rules_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_rules_dir(tmp_path_factory.mktemp("cli"))


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A fresh ledger: its URL, and the CLI options that name it."""
    if request.param == "sqlite":
        yield default_sqlite_url(tmp_path / "data"), ["--data-dir", str(tmp_path / "data")]
        return
    with fresh_database("postgres", tmp_path) as url:
        yield url, ["--database-url", url]


@pytest.fixture
def ledger_args(database: tuple[str, list[str]], rules_dir: Path) -> list[str]:
    """CLI options naming a ledger with three places of q3 and one of t2 taken in 2024."""
    url, args = database
    with DecisionService(database_url=url, rules_dir=rules_dir) as service:
        for i in range(3):
            service.decide(km_request("test_quota_3", case_id=f"c{i}"))
        service.decide(km_request("test_target_2", case_id="t0"))
    return [*args, "--rules", str(rules_dir)]


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    return app


runner = CliRunner()


def test_status_as_json(app: typer.Typer, ledger_args: list[str]) -> None:
    result = runner.invoke(app, ["quota", "status", "--json", *ledger_args])
    assert result.exit_code == 0, result.output
    lines = {(u["quota_id"], u["period_key"]): u for u in json.loads(result.stdout)}
    assert lines[("q3", "2024")] == {
        "quota_id": "q3",
        "period_key": "2024",
        "used": 3,
        "limit": 3,
        "kind": "quota",
        "remaining": 0,
        "title": "Test quota q3",
        "state": "full",
    }
    assert (lines[("t2", "2024")]["used"], lines[("t2", "2024")]["state"]) == (1, "within")


def test_status_table_and_one_quota(app: typer.Typer, ledger_args: list[str]) -> None:
    result = runner.invoke(app, ["quota", "status", "--quota", "q3", *ledger_args])
    assert result.exit_code == 0, result.output
    assert "q3" in result.stdout and "full" in result.stdout and "t2" not in result.stdout
    unknown = runner.invoke(app, ["quota", "status", "--quota", "nope", *ledger_args])
    assert unknown.exit_code == 2
    assert "unknown quota 'nope'" in unknown.stderr


def test_release_gives_the_place_back(app: typer.Typer, ledger_args: list[str]) -> None:
    result = runner.invoke(app, ["quota", "release", "c1", *ledger_args])
    assert result.exit_code == 0, result.output
    assert "released place 2 of q3 (2024) held by c1" in result.stdout
    status = runner.invoke(app, ["quota", "status", "--quota", "q3", "--json", *ledger_args])
    assert [(u["used"], u["state"]) for u in json.loads(status.stdout) if u["period_key"] == "2024"] == [(2, "open")]
    again = runner.invoke(app, ["quota", "release", "c1", *ledger_args])
    assert again.exit_code == 2
    assert "holds no place" in again.stderr


def test_release_of_one_quota_as_json(app: typer.Typer, tmp_path: Path, rules_dir: Path) -> None:
    with DecisionService.embedded(tmp_path / "env-data", rules_dir=rules_dir) as service:
        service.decide(km_request(["test_quota_3", "test_target_2"], case_id="both"))
    env = {"KMRULES_DATA_DIR": str(tmp_path / "env-data"), "KMRULES_RULES_DIR": str(rules_dir)}
    result = runner.invoke(app, ["quota", "release", "both", "--quota", "t2", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert [(r["quota_id"], r["place_no"]) for r in json.loads(result.stdout)] == [("t2", 1)]
    status = runner.invoke(app, ["quota", "status", "--quota", "q3", "--json"], env=env)
    assert [u["used"] for u in json.loads(status.stdout) if u["period_key"] == "2024"] == [1]


def test_the_kmrules_command_has_the_quota_group(tmp_path: Path, rules_dir: Path) -> None:
    script = Path(sys.executable).with_name("kmrules")
    result = subprocess.run(
        [str(script), "quota", "status", "--json", "--data-dir", str(tmp_path / "d"), "--rules", str(rules_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert {u["quota_id"] for u in json.loads(result.stdout)} == {"q3", "q10", "q50", "t2", "q_ict_1", "q_quarterly"}
    assert (tmp_path / "d" / "kmrules.sqlite").is_file()
