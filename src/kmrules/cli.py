"""The `kmrules` command line: decide a request file, and (as they land) compare, quota, serve."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from kmrules.errors import KmrulesError, Problem, RequestError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(width=max(Console().width, 160))
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """kmrules: Dutch knowledge-migrant rules and the 2023 labour-migration package as code."""


DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="KMRULES_DATA_DIR",
        help="Folder of the embedded SQLite ledger and audit log (default ./data).",
    ),
]
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="KMRULES_DATABASE_URL",
        help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (wins over --data-dir).",
    ),
]
RulesOption = Annotated[
    Path | None,
    typer.Option("--rules", envvar="KMRULES_RULES_DIR", help="Rules directory (default: the package's rules/)."),
]


def read_request(path: Path) -> dict[str, Any]:
    """Read a JSON request file; on failure print the file and the reason and exit 2."""
    reason = None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        reason = "no such file"
    except json.JSONDecodeError as exc:
        reason = f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    else:
        if isinstance(data, dict):
            return data
        reason = "the request must be a JSON object"
    fail(RequestError([Problem(str(path), reason)]))


def fail(exc: KmrulesError) -> NoReturn:
    """Print a typed error and exit non-zero (2: bad input)."""
    err_console.print(f"[red]error:[/] {exc}", soft_wrap=True)
    raise typer.Exit(code=2)


@app.command()
def decide(
    request_file: Annotated[Path, typer.Argument(help="Request JSON file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the exact response JSON.")] = False,
    rules: RulesOption = None,
) -> None:
    """Decide one application and explain every criterion."""
    import kmrules

    request = read_request(request_file)
    try:
        decision = kmrules.decide(request, rules_dir=rules)
    except KmrulesError as exc:
        fail(exc)
        return
    if as_json:
        sys.stdout.write(json.dumps(decision.model_dump(mode="json"), indent=2) + "\n")
    else:
        from kmrules.render import decision_table

        decision_table(decision, console)


def main() -> None:
    """Console-script entry point."""
    from kmrules import cli_extra

    cli_extra.register(app)
    app()
