"""Server settings from the environment (what every `kmrules serve --workers N` worker reads)."""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

import anyio.to_thread
import opentelemetry.trace
import pytest
from fastapi.testclient import TestClient

from api.app import app_from_env, create_app
from api.examples import DECISION_REQUEST
from api.settings import ENV_DATA_DIR, ENV_TELEMETRY, ENV_WRITE_CONCURRENCY, Settings


def test_settings_survive_the_trip_through_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = Settings.resolve(data_dir=tmp_path).with_(write_concurrency=3, telemetry=True)
    for name, value in original.to_env().items():
        monkeypatch.setenv(name, value)
    assert Settings.resolve() == original.with_(data_dir=tmp_path.resolve())


def test_decisions_run_on_the_event_loop_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_WRITE_CONCURRENCY, raising=False)
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path))
    assert Settings.resolve().write_concurrency == 0


@pytest.mark.parametrize("bad", ["-1", "two", "1.5", " "])
def test_a_bad_write_concurrency_names_the_variable(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(ENV_WRITE_CONCURRENCY, bad)
    with pytest.raises(ValueError, match=ENV_WRITE_CONCURRENCY):
        Settings.resolve()


@pytest.mark.parametrize(("text", "on"), [("1", True), ("TRUE", True), ("yes", True), ("0", False), ("false", False)])
def test_telemetry_is_switched_by_the_environment(monkeypatch: pytest.MonkeyPatch, text: str, on: bool) -> None:
    monkeypatch.setenv(ENV_TELEMETRY, text)
    assert Settings.resolve().telemetry is on


def test_telemetry_is_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV_TELEMETRY, raising=False)
    monkeypatch.setenv(ENV_DATA_DIR, str(tmp_path))
    assert Settings.resolve().telemetry is False


@pytest.mark.parametrize("bad", ["2", "on", " "])
def test_a_bad_telemetry_switch_names_the_variable(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv(ENV_TELEMETRY, bad)
    with pytest.raises(ValueError, match=ENV_TELEMETRY):
        Settings.resolve()


@pytest.mark.parametrize("on", [False, True])
def test_fastapi_asks_for_a_tracer_provider_only_with_telemetry_on(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, on: bool
) -> None:
    """Off (the default), no request looks up OpenTelemetry's providers; on, FastAPI does."""
    asked: list[int] = []
    real = opentelemetry.trace.get_tracer_provider

    def counted() -> Any:
        asked.append(1)
        return real()

    monkeypatch.setattr(opentelemetry.trace, "get_tracer_provider", counted)
    with TestClient(create_app(settings.with_(telemetry=on))) as client:
        key = client.app.state.ctx.keys.create("caseworker")[0]  # type: ignore[attr-defined]
        asked.clear()  # start-up may look once
        for _ in range(3):
            answer = client.post("/v1/decisions", json=DECISION_REQUEST, headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200, answer.text
    assert (len(asked) >= 3) if on else (asked == [])


@pytest.mark.parametrize(("writers", "pooled"), [(0, False), (2, True)])
def test_a_key_lookup_runs_where_decisions_run(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, writers: int, pooled: bool
) -> None:
    """A cache miss asks the database on the loop by default (in the thread pool every request
    in flight at expiry queued for the GIL at once: stalls of 25-65 ms every 5 s)."""
    calls: list[str] = []
    real = anyio.to_thread.run_sync

    async def spy(fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(fn, "__qualname__", repr(fn)))
        return await real(fn, *args, **kwargs)

    with TestClient(create_app(settings.with_(write_concurrency=writers))) as client:
        key = client.app.state.ctx.keys.create("caseworker")[0]  # type: ignore[attr-defined]
        monkeypatch.setattr(anyio.to_thread, "run_sync", spy)
        answer = client.post("/v1/decisions", json=DECISION_REQUEST, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    assert settings.key_cache_seconds == 0.0  # so the lookup went to the database
    if pooled:
        assert len(calls) == 2  # the key lookup, then the decision
    else:
        assert calls == []


def test_the_server_factory_freezes_what_it_loaded_and_skips_log_caller_lookups(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    for flag in ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing"):
        monkeypatch.setattr(logging, flag, getattr(logging, flag))  # restored after the test
    gc.unfreeze()
    app = app_from_env()
    try:
        assert gc.get_freeze_count() > 10_000  # the rules and schemas: out of every full collection
        # and log records skip the caller lookup (the JSON lines print no file or line)
        assert (logging._srcfile, logging.logThreads, logging.logProcesses) == (None, False, False)
    finally:
        gc.unfreeze()
        app.state.ctx.service.close()
        app.state.ctx.engine.dispose()
