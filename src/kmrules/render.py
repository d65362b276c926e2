"""Human-readable rendering of decisions and comparisons (Rich tables) for the CLI."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from kmrules.model import Decision

_STYLE = {"pass": "green", "fail": "red", "not_applicable": "dim", "undetermined": "yellow"}
_OUTCOME = {"granted": "bold green", "refused": "bold red", "undetermined": "bold yellow"}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return "\n".join(f"{k}: {v}" for k, v in value.items())
    return str(value)


def decision_table(decision: Decision, console: Console) -> None:
    """Print one decision: outcome, a row per finding, amounts, missing inputs, receipt."""
    console.print(
        f"[{_OUTCOME[decision.outcome]}]{decision.outcome.upper()}[/] — scheme {decision.scheme}, "
        f"variant {decision.variant}, date {decision.receipt.decision_date}"
    )
    table = Table(show_lines=True)
    for column in ("rule", "result", "observed", "required", "explanation", "legal basis"):
        table.add_column(column)
    for f in decision.findings:
        basis = "\n".join(b.seed or b.url or "" for b in f.legal_basis)
        table.add_row(
            f.rule, f"[{_STYLE[f.result]}]{f.result}[/]", _cell(f.observed), _cell(f.required), f.explanation, basis
        )
    console.print(table)
    for amount in decision.amounts.values():
        extra = f" (missing: {', '.join(amount.missing)})" if amount.missing else ""
        console.print(f"{amount.title}: [bold]{amount.value}[/] {amount.unit}{extra}")
    for q in decision.quota:
        console.print(f"quota {q.quota}: {q.result} — {q.explanation}")
    if decision.missing:
        console.print(f"[yellow]missing inputs:[/] {', '.join(decision.missing)}")
    if decision.counterfactuals:
        for key, value in decision.counterfactuals.items():
            console.print(f"{key}: {value}")
    console.print(f"[dim]rules hash {decision.receipt.rules_hash[:16]} · {decision.receipt.engine}[/]")
