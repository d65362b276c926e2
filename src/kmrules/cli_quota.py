"""`kmrules quota status` and `kmrules quota release CASE_ID`: the ledger from the command line.

The database: `--database-url` (or KMRULES_DATABASE_URL) for a shared PostgreSQL ledger,
otherwise the embedded SQLite file in `--data-dir` (or KMRULES_DATA_DIR, default ./data).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kmrules.cli import DatabaseUrlOption, DataDirOption, RulesOption, console, fail
from kmrules.errors import KmrulesError
from kmrules.quota.models import Released, Usage
from kmrules.service import DecisionService

DEFAULT_DATA_DIR = Path("data")
CLI_ROLE = "cli"
"""The actor role the audit log records for a release made from the command line."""

QuotaOption = Annotated[str | None, typer.Option("--quota", help="Only this quota or target id.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

quota_app = typer.Typer(
    no_args_is_help=True,
    help="Quota and target figures (seed §2.2, §2.6, §2.11): how full they are, and giving places back.",
)


def register(app: typer.Typer) -> None:
    """Attach the `quota` sub-commands to the main CLI."""
    app.add_typer(quota_app, name="quota")


def open_service(data_dir: Path | None, database_url: str | None, rules: Path | None) -> DecisionService:
    """The service on the chosen ledger (creating and migrating an embedded one if needed)."""
    if database_url:
        return DecisionService(database_url=database_url, rules_dir=rules)
    return DecisionService.embedded(data_dir or DEFAULT_DATA_DIR, rules_dir=rules)


@quota_app.command("status")
def status(
    quota: QuotaOption = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = False,
) -> None:
    """How full each quota and target figure is, per period."""
    try:
        with open_service(data_dir, database_url, rules) as service:
            usages = service.quota_status(quota)
            titles = {d.id: d.title for d in service.quota_definitions()}
    except KmrulesError as exc:
        fail(exc)
        return
    if as_json:
        lines = [{**u.model_dump(), "title": titles[u.quota_id], "state": _state(u)} for u in usages]
        sys.stdout.write(json.dumps(lines, indent=2) + "\n")
        return
    table = Table(title="Quota and target figures")
    for column in ("Quota", "Kind", "Period", "Used", "Limit", "Remaining", "State", "Title"):
        table.add_column(column, justify="right" if column in ("Used", "Limit", "Remaining") else "left")
    for u in usages:
        table.add_row(
            u.quota_id,
            u.kind,
            u.period_key,
            f"{u.used:,}",
            f"{u.limit:,}",
            f"{u.remaining:,}",
            _state(u),
            titles[u.quota_id],
        )
    console.print(table)


@quota_app.command("release")
def release(
    case_id: Annotated[str, typer.Argument(help="The case whose places to give back (e.g. a withdrawn application).")],
    quota: QuotaOption = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    rules: RulesOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give back a case's places (of one quota, or all); the release is audited."""
    try:
        with open_service(data_dir, database_url, rules) as service:
            released = service.release(case_id, quota, actor_role=CLI_ROLE)
    except KmrulesError as exc:
        fail(exc)
        return
    if as_json:
        sys.stdout.write(json.dumps([r.model_dump(mode="json") for r in released], indent=2) + "\n")
        return
    for r in released:
        console.print(_released_line(r))


def _state(usage: Usage) -> str:
    if usage.kind == "target":
        return "exceeded" if usage.used > usage.limit else "within"
    return "full" if usage.used >= usage.limit else "open"


def _released_line(r: Released) -> str:
    return f"released place {r.place_no} of {r.quota_id} ({r.period_key}) held by {r.case_id}"
