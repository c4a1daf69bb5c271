"""The `quire` command's answers to bad set-ups: one line, a non-zero exit, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import TEST_SECRET_KEY


def quire(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QUIRE_")}
    return subprocess.run(
        [sys.executable, "-m", "quire.app.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr


def test_unreachable_database(tmp_path: Path) -> None:
    result = quire(
        "migrate",
        env={
            "QUIRE_DATABASE_URL": "postgresql://quire@127.0.0.1:1/quire",
            "QUIRE_DATA_DIR": str(tmp_path),
        },
    )
    assert_one_clear_line(result, "cannot reach the database", "QUIRE_DATABASE_URL")


def test_unreachable_broker(database_url: str, tmp_path: Path) -> None:
    result = quire(
        "worker",
        env={
            "QUIRE_DATABASE_URL": database_url,
            "QUIRE_SECRET_KEY": TEST_SECRET_KEY,
            "QUIRE_BROKER_URL": "redis://127.0.0.1:1/0",
            "QUIRE_DATA_DIR": str(tmp_path),
        },
    )
    assert_one_clear_line(result, "cannot reach the broker", "QUIRE_BROKER_URL")


@pytest.mark.parametrize(("name", "value"), [("QUIRE_API_BIND", "everywhere"), ("QUIRE_WORKR_THREADS", "4")])
def test_bad_settings_name_the_variable(name: str, value: str, tmp_path: Path) -> None:
    result = quire("migrate", env={name: value, "QUIRE_DATA_DIR": str(tmp_path)})
    assert_one_clear_line(result, name)


def test_keys_for_an_unknown_tenant(database_url: str, tmp_path: Path) -> None:
    result = quire(
        "keys",
        "create",
        "--role",
        "reviewer",
        "--tenant",
        "nobody",
        env={
            "QUIRE_DATABASE_URL": database_url,
            "QUIRE_SECRET_KEY": TEST_SECRET_KEY,
            "QUIRE_DATA_DIR": str(tmp_path),
        },
    )
    assert_one_clear_line(result, "no tenant named 'nobody'")
