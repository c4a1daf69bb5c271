"""What `quire --help` and `quire --version` say: plain metavars, short flags, one meaning per name."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from quire.app.cli import app

runner = CliRunner()


def every_command() -> list[list[str]]:
    found: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        found.append(path)
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            for name, sub in command.commands.items():
                walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


@pytest.mark.parametrize("path", every_command(), ids=lambda p: " ".join(p) or "quire")
def test_help_names_no_python_types(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("<bool>", "<str>", "<int>", "<float>", "<list[", "<Path>", "<path>"):
        assert name not in result.stdout, f"quire {' '.join(path)} --help shows {name}"


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == "quire 0.1.0"


def test_short_flags_and_one_meaning_per_option() -> None:
    search = runner.invoke(app, ["search", "--help"], env={"COLUMNS": "200"}).stdout
    assert "-k" in search and "--k " not in search and "-c" in search and "--json" in search
    signal = runner.invoke(app, ["runs", "signal", "--help"], env={"COLUMNS": "200"}).stdout
    assert "--dedup-key" in signal and "--key " not in signal
    for path in (
        ["ingest"],
        ["ask"],
        ["runs", "list"],
        ["runs", "show"],
        ["keys", "list"],
        ["memories", "list"],
        ["keys", "create"],
        ["tenant-create"],
        ["tools", "mcp", "list"],
    ):
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).stdout
        assert "--json" in shown, f"quire {' '.join(path)} has no --json"
