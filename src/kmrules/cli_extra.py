"""Sub-commands that live in their own modules are attached here (compare, measures, quota, serve, keys)."""

from __future__ import annotations

import importlib

import typer

_MODULES = ("kmrules.cli_policy", "kmrules.cli_quota", "kmrules.cli_server")


def register(app: typer.Typer) -> None:
    """Attach every sub-command module that is present in this distribution."""
    for name in _MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(app)
