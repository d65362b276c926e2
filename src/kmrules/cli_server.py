"""`kmrules serve` (the HTTP API) and `kmrules keys` (API keys), attached by cli_extra.

Safe defaults: the server binds to 127.0.0.1 with an SQLite ledger and audit log in ./data.
On first start (no keys yet) it creates an admin key and prints it once; bound to any other
address without keys it refuses to start, so an open port never means an open API.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kmrules.cli import DatabaseUrlOption, DataDirOption, RulesOption, err_console
from kmrules.errors import KmrulesError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from api.keystore import KeyStore

ROLES = ("caseworker", "policy", "admin")


keys_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Create, list and revoke API keys.")


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (the only binds allowed without keys)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to bind.")] = 8000,
    data_dir: DataDirOption = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="Worker processes (share the database).")
    ] = 1,
    database_url: DatabaseUrlOption = None,
    rules: RulesOption = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning, error.")] = "info",
) -> None:
    """Start the HTTP API (OpenAPI at /docs and /openapi.json)."""
    import uvicorn

    from api import logging as api_logging
    from api.keystore import KeyStore
    from api.settings import Settings
    from api.workers import reuse_port_supported, run_workers
    from kmrules.decide import get_rulebook
    from kmrules.store.database import make_engine, migrate

    settings = Settings.resolve(data_dir=data_dir, database_url=database_url, rules_dir=rules, log_level=log_level)
    try:
        get_rulebook(settings.rules_dir)  # a bad rule file stops here, with file, line and reason
        engine = make_engine(settings.database_url)
        migrate(engine)
        store = KeyStore(engine)
        first_key = None
        if not store.any_active():
            if not is_loopback(host):
                err_console.print(
                    f"[red]error:[/] refusing to bind {host}: no API keys exist. Create one with "
                    "`kmrules keys create --role admin` (same --data-dir/--database-url), or bind 127.0.0.1."
                )
                raise typer.Exit(code=2)
            first_key, _ = store.create("admin")
        engine.dispose()
    except KmrulesError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(code=2) from exc
    if first_key is not None:
        sys.stdout.write(
            "No API keys existed: created an admin key. It is stored hashed and shown only now; "
            "send it as `Authorization: Bearer <key>`:\n" + first_key + "\n"
        )
    sys.stdout.write(
        f"kmrules API on http://{host}:{port} (docs: /docs), database: {_safe_url(settings.database_url)}\n"
    )
    sys.stdout.flush()
    os.environ.update(settings.to_env())  # every worker rebuilds the same settings (api.app:app_from_env)
    options: dict[str, Any] = {
        "log_config": api_logging.log_config(settings.log_level),
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    if workers > 1 and reuse_port_supported():  # one socket per worker: see api.workers
        try:
            code = run_workers(host, port, workers, options)
        except OSError as exc:
            err_console.print(f"[red]error:[/] cannot listen on {host}:{port}: {exc.strerror or exc}")
            raise typer.Exit(code=2) from exc
        raise typer.Exit(code=code)
    uvicorn.run("api.app:app_from_env", factory=True, host=host, port=port, workers=workers, **options)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option("--role", help="caseworker, policy or admin.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create an API key; the key is printed alone on the last line (only its hash is stored)."""
    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}", param_hint="--role")
    store, engine = _store(data_dir, database_url)
    try:
        key, record = store.create(role)
    finally:
        engine.dispose()
    sys.stdout.write(f"created {role} key {record.id} (shown once; stored hashed):\n{key}\n")


@keys_app.command("list")
def keys_list(data_dir: DataDirOption = None, database_url: DatabaseUrlOption = None) -> None:
    """List key ids, roles and dates (never the keys)."""
    store, engine = _store(data_dir, database_url)
    try:
        for r in store.list():
            state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
            sys.stdout.write(f"{r.id}  {r.role:<10}  created {r.created_at:%Y-%m-%d %H:%M}  {state}\n")
    finally:
        engine.dispose()


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Key id (from `kmrules keys list`).")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Revoke a key by id (running servers stop accepting it within seconds)."""
    store, engine = _store(data_dir, database_url)
    try:
        done = store.revoke(key_id)
    finally:
        engine.dispose()
    if not done:
        err_console.print(f"[red]error:[/] no active key {key_id!r}")
        raise typer.Exit(code=2)
    sys.stdout.write(f"revoked {key_id}\n")


def _store(data_dir: Path | None, database_url: str | None) -> tuple[KeyStore, Engine]:
    """The key store of the server's database (migrated, so a fresh data dir works)."""
    from api.keystore import KeyStore
    from api.settings import Settings
    from kmrules.store.database import make_engine, migrate

    settings = Settings.resolve(data_dir=data_dir, database_url=database_url)
    engine = make_engine(settings.database_url)
    migrate(engine)
    return KeyStore(engine), engine


def register(app: typer.Typer) -> None:
    """Attach `serve` and `keys` to the main CLI."""
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")
