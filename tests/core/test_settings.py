from __future__ import annotations

from pathlib import Path

import pytest

from quire.core.errors import ConfigurationError
from quire.core.settings import load_settings


def test_defaults_run_the_embedded_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QUIRE_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.embedded_database
    assert settings.broker_url == ""
    assert settings.data_dir == tmp_path
    assert (settings.api_host, settings.api_port) == ("127.0.0.1", 8000)
    assert settings.embedding_model == "all-MiniLM-L6-v2"


def test_a_bad_value_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUIRE_WORKER_PROCESSES", "many")
    with pytest.raises(ConfigurationError, match="QUIRE_WORKER_PROCESSES"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QUIRE_API_BIND", "8000"),
        ("QUIRE_DATABASE_URL", "mysql://localhost/quire"),
        ("QUIRE_BROKER_URL", "kafka://localhost"),
        ("QUIRE_LOG_LEVEL", "LOUD"),
    ],
)
def test_malformed_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        load_settings()


def test_an_unknown_variable_is_named_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUIRE_DATABSE_URL", "postgresql://x/y")
    with pytest.raises(ConfigurationError, match=r"QUIRE_DATABSE_URL.*QUIRE_DATABASE_URL"):
        load_settings()
