"""`quire ingest`'s summary: each file's outcome, its reason, and the warnings about its text."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from quire.app.ingest_outcomes import Outcome
from quire.app.ingest_outcomes import summarise as _summarise


def test_the_summary_notes_each_files_text_quality_warnings() -> None:
    console = Console(record=True, width=200)
    outcomes = [
        Outcome(
            Path("letter.pdf"),
            "letter.pdf",
            status="ingested",
            warnings=["joined letter-spaced words on pages 2-3"],
        ),
        Outcome(Path("notes.md"), "notes.md", status="ingested"),
        Outcome(
            Path("contract.eml"),
            "contract.eml",
            status="empty",
            reason="the file holds no text",
            warnings=["the email's body is encrypted (S/MIME); only its headers could be read"],
        ),
    ]

    failed = _summarise(outcomes, console)

    text = console.export_text()
    assert failed == 0
    letter = next(line for line in text.splitlines() if "letter.pdf" in line)
    assert "joined letter-spaced words on pages 2-3" in letter
    assert "encrypted (S/MIME)" in text
    assert "1 empty, 2 ingested; 2 with warnings" in text
