"""The CLI on a bare machine: ingest a folder, search it, ask a question (no worker running)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

HANDBOOK = """# Employee handbook

## Holidays

Every employee gets 27 days of paid holiday a year.

## Equipment

Laptops are replaced every three years.
"""


def quire(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quire.app.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_ingest_search_and_ask_from_the_command_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIRE_")}
    env.update(QUIRE_DATA_DIR=str(tmp_path / "data"), COLUMNS="200")
    docs = tmp_path / "docs"
    (docs / "nested").mkdir(parents=True)
    (docs / "handbook.md").write_text(HANDBOOK)
    from tests.content.fixtures import docx

    (docs / "nested" / "broken.docx").write_bytes(docx()[:400])  # a DOCX cut short
    (docs / ".hidden.md").write_text("# skipped")
    try:
        assert quire(env, "migrate").returncode == 0
        from quire.app.bootstrap import first_admin_key
        from quire.core.settings import Settings

        assert first_admin_key(Settings(data_dir=tmp_path / "data", secret_key="")) is not None

        first = quire(env, "ingest", str(docs))
        assert first.returncode == 1, first.stdout + first.stderr  # one file failed
        assert "1 ingested, 1 unsupported" in first.stdout
        assert "broken.docx" in first.stdout and "unsupported" in first.stdout
        assert ".hidden" not in first.stdout
        # With no worker to take them later, the command also ran the background memory run
        # of the version it ingested.
        memory_runs = quire(env, "runs", "list", "--program", "memory.on-version")
        assert "1 of 1 runs" in memory_runs.stdout and "completed" in memory_runs.stdout, memory_runs.stdout
        missing = quire(env, "runs", "retry", "00000000-0000-4000-8000-000000000000")
        assert (
            missing.returncode != 0
            and "no run 00000000-0000-4000-8000-000000000000" in missing.stdout + missing.stderr
        )

        again = quire(env, "ingest", str(docs / "handbook.md"))
        assert again.returncode == 0 and "1 unchanged" in again.stdout

        (docs / "handbook.md").write_text(HANDBOOK + "\n## Parking\n\nThere are forty parking spaces.\n")
        edited = quire(env, "ingest", str(docs))
        assert "1 ingested, 1 unchanged" in edited.stdout, edited.stdout
        assert "same bytes as version 1" in edited.stdout  # broken.docx, found without an upload

        found = quire(env, "search", "laptop replacement")
        assert found.returncode == 0 and "Laptops are replaced every three years" in found.stdout

        answer = quire(env, "ask", "How many days of paid holiday do employees get?")
        assert answer.returncode == 0, answer.stderr
        assert '"Every employee gets 27 days of paid holiday a year." [1]' in answer.stdout
        assert (
            "[1] Employee handbook (v2, Employee handbook > Holidays)" in answer.stdout
        )  # titled by its heading
        assert "Traceback" not in answer.stdout + answer.stderr
    finally:
        quire(env, "db", "stop")
