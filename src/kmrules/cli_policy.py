"""Policy commands: compare a case under variants, list variants and the measures catalogue."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from kmrules.cli import RulesOption, console, fail, read_request
from kmrules.errors import KmrulesError


def compare_command(
    request_file: Annotated[Path, typer.Argument(help="Request JSON file.")],
    variants: Annotated[str, typer.Option("--variants", help="Comma-separated variant or package ids.")] = "baseline",
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
    rules: RulesOption = None,
) -> None:
    """Decide one case under several variants and show what differs."""
    from kmrules.compare import compare

    request = read_request(request_file)
    try:
        result = compare(request, [v.strip() for v in variants.split(",") if v.strip()], rules_dir=rules)
    except KmrulesError as exc:
        fail(exc)
        return
    if as_json:
        sys.stdout.write(json.dumps(result.model_dump(mode="json"), indent=2) + "\n")
        return
    table = Table(title=f"{result.scheme}: one case under {len(result.variants)} variants")
    table.add_column("rule")
    for label in result.variants:
        table.add_column(label)
    table.add_row("outcome", *[result.outcomes[v] for v in result.variants])
    for diff in result.differences:
        if diff.rule == "outcome":
            continue
        cells = []
        for v in result.variants:
            req = diff.required.get(v)
            cells.append(f"{diff.results.get(v) or '—'}" + (f" (req. {req})" if req is not None else ""))
        table.add_row(diff.rule, *cells)
    console.print(table)
    for decision in result.results:
        needed = decision.amounts.get("salary_needed")
        if needed is not None:
            console.print(f"{decision.variant}: salary needed EUR {needed.value}")


def variants_command(rules: RulesOption = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the shipped variants and policy packages."""
    from kmrules.catalogue import list_variants

    items = list_variants(rules)
    if as_json:
        sys.stdout.write(json.dumps([v.model_dump() for v in items], indent=2) + "\n")
        return
    table = Table(title="variants and packages")
    for column in ("id", "kind", "seed §", "effect", "title"):
        table.add_column(column)
    for v in items:
        table.add_row(v.id, v.kind, ", ".join(v.seed_sections), v.expected_effect or "", v.title)
    console.print(table)


def measures_command(rules: RulesOption = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the measures catalogue (seed sections 1.1-1.5 and 2.1-2.16)."""
    from kmrules.catalogue import measures

    items = measures(rules)
    if as_json:
        sys.stdout.write(json.dumps([m.model_dump() for m in items], indent=2, default=str) + "\n")
        return
    table = Table(title="measures of the 2023 labour-migration package")
    for column in ("§", "tracks", "effect", "title", "figures", "encoded by"):
        table.add_column(column)
    for m in items:
        figures = ", ".join(str(f.value) for f in m.figures)
        table.add_row(m.section, ",".join(m.tracks), m.expected_effect, m.title, figures, ", ".join(m.encoded_by))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Attach the policy commands to the main CLI."""
    app.command("compare")(compare_command)
    app.command("variants")(variants_command)
    app.command("measures")(measures_command)


_ = KmrulesError  # re-exported for callers that catch it from here
