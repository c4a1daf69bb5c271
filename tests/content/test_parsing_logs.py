"""The parsing server's log lines reach the worker's log like the worker's own: named and formatted."""

from __future__ import annotations

import json

import pytest

from quire.content.parsing import Parser
from tests.content import fixtures


def skipped_attachment_line(capfd: pytest.CaptureFixture[str]) -> str:
    with Parser() as parser:
        parser.parse(fixtures.eml_with_attachments(), filename="sales.eml")
    lines = capfd.readouterr().err.splitlines()
    return next(line for line in lines if "Skipping attachment photo.png" in line)


def test_unstructured_lines_name_their_logger_in_text_logs(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUIRE_LOG_FORMAT", "text")

    line = skipped_attachment_line(capfd)

    assert " WARNING quire-parser[" in line
    assert "] unstructured: Skipping attachment photo.png: ImportError" in line


def test_unstructured_lines_are_json_when_the_worker_logs_json(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUIRE_LOG_FORMAT", "json")

    record = json.loads(skipped_attachment_line(capfd))

    assert (record["level"], record["logger"]) == ("WARNING", "unstructured")
    assert record["message"].startswith("Skipping attachment photo.png")


def test_the_parsing_server_logs_at_the_workers_level(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUIRE_LOG_LEVEL", "ERROR")

    with Parser() as parser:
        parser.parse(fixtures.eml_with_attachments(), filename="sales.eml")

    assert "Skipping attachment" not in capfd.readouterr().err
