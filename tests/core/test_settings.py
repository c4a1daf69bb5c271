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


@pytest.mark.parametrize("name", ["QUIRE_BOGUS", "QUIRE_X", "QUIRE_MODEL_NAME", "QUIRE_EMBEDDING"])
def test_an_unknown_variable_far_from_every_setting_gets_no_suggestion(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "1")
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert name in str(error.value)
    assert "did you mean" not in str(error.value)


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("QUIRE_WORKR_THREADS", "QUIRE_WORKER_THREADS"),
        ("QUIRE_BROKER", "QUIRE_BROKER_URL"),
        ("QUIRE_DATABASE", "QUIRE_DATABASE_URL"),
        ("QUIRE_API_KEYS", "QUIRE_API_KEY"),
        ("QUIRE_LOGLEVEL", "QUIRE_LOG_LEVEL"),
        ("QUIRE_SECRET", "QUIRE_SECRET_KEY"),
    ],
)
def test_a_misspelt_variable_gets_the_setting_it_is_close_to(
    monkeypatch: pytest.MonkeyPatch, name: str, meant: str
) -> None:
    monkeypatch.setenv(name, "1")
    with pytest.raises(ConfigurationError, match=f"{name} \\(did you mean {meant}\\?\\)"):
        load_settings()


def test_a_roles_run_budget_maximum_keeps_the_defaults_of_the_limits_it_leaves_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUIRE_RUN_BUDGET_READER", '{"max_cost_usd": 0.25}')
    monkeypatch.setenv("QUIRE_RUN_BUDGET_ADMIN", '{"max_steps": 7}')
    settings = load_settings()
    assert settings.run_budget_reader.max_cost_usd == 0.25
    assert settings.run_budget_reader.max_tokens == 200_000
    assert (settings.run_budget_admin.max_steps, settings.run_budget_admin.max_tokens) == (7, 2_000_000)
    assert settings.run_budget_contributor.max_cost_usd == 2.0
    assert settings.tenant_daily_budget_usd == 20.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QUIRE_RUN_BUDGET_READER", '{"max_cost_usd": -1}'),
        ("QUIRE_RUN_BUDGET_REVIEWER", '{"max_steps": null}'),
        ("QUIRE_RUN_BUDGET_ADMIN", '{"max_tokns": 5}'),
        ("QUIRE_RUN_BUDGET_CONTRIBUTOR", "lots"),
        ("QUIRE_TENANT_DAILY_BUDGET_USD", "-5"),
        ("QUIRE_MAX_REQUEST_KB", "0"),
        ("QUIRE_LOGIN_RATE_LIMIT_PER_MINUTE", "-1"),
    ],
)
def test_malformed_limits_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        load_settings()


def test_retry_policies_and_the_tool_timeout_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = load_settings()
    assert defaults.model_retry.model_dump() == {"max_attempts": 4, "base_delay": 2.0, "max_delay": 60.0}
    assert defaults.tool_retry.model_dump() == {"max_attempts": 3, "base_delay": 0.5, "max_delay": 5.0}
    assert defaults.tool_timeout_seconds == 60.0
    monkeypatch.setenv("QUIRE_MODEL_RETRY", '{"max_attempts": 6}')
    monkeypatch.setenv("QUIRE_TOOL_RETRY", '{"base_delay": 1, "max_delay": 2}')
    monkeypatch.setenv("QUIRE_TOOL_TIMEOUT_SECONDS", "15")
    settings = load_settings()
    assert settings.model_retry.model_dump() == {"max_attempts": 6, "base_delay": 2.0, "max_delay": 60.0}
    assert settings.tool_retry.model_dump() == {"max_attempts": 3, "base_delay": 1.0, "max_delay": 2.0}
    assert settings.tool_timeout_seconds == 15.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("QUIRE_MODEL_RETRY", '{"max_attempts": 0}'),
        ("QUIRE_TOOL_RETRY", '{"base_delay": -1}'),
        ("QUIRE_TOOL_RETRY", '{"attempts": 2}'),
        ("QUIRE_TOOL_TIMEOUT_SECONDS", "0"),
    ],
)
def test_malformed_retry_policies_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        load_settings()
