"""Server settings from the environment (what every `kmrules serve --workers N` worker reads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.settings import ENV_DATA_DIR, ENV_WRITE_CONCURRENCY, Settings


def test_settings_survive_the_trip_through_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = Settings.resolve(data_dir=tmp_path).with_(write_concurrency=3)
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
