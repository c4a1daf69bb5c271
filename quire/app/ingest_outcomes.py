"""What `quire ingest` reports, whichever way it ingests: which document each file is, and how
each file's ingestion ended."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from quire.core.errors import QuireError


@dataclass
class Outcome:
    path: Path | None  # None: a failed version found in the database, retried by its key
    key: str  # the document's source key
    version_id: uuid.UUID | None = None
    status: str = "pending"
    reason: str = ""
    document_id: uuid.UUID | None = None
    number: int = 0
    warnings: list[str] = field(default_factory=list)  # about the text of its version

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else self.key

    def public(self) -> dict[str, Any]:
        """The outcome as `quire ingest --json` prints it."""
        return {
            "file": str(self.path) if self.path is not None else None,
            "key": self.key,
            "status": self.status,
            "reason": self.reason,
            "document_id": str(self.document_id) if self.document_id else None,
            "version_id": str(self.version_id) if self.version_id else None,
            "warnings": self.warnings,
        }


def keyed_files(paths: Iterable[Path], *, source_key: str | None = None) -> list[tuple[Path, str]]:
    """Each file to ingest with the source key of its document.

    A file found in a folder given is keyed by its path below that folder (`policies/leave.md`),
    a file given directly by its name: the key does not depend on the current folder nor on how
    the path was typed, so `quire ingest /abs/examples` and, later, `quire ingest
    examples/handbook.md` make versions 1 and 2 of one document. Hidden files and folders are
    skipped when they are below a folder given, whatever the folders above it are called.
    `source_key` names the document of the one file given.
    """
    found: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            below = sorted((p, p.relative_to(path)) for p in path.rglob("*") if p.is_file())
            found += [
                (p, relative.as_posix())
                for p, relative in below
                if not any(part.startswith(".") for part in relative.parts)
            ]
        else:
            found.append((path, path.name))
    if source_key is not None:
        if len(found) != 1:
            raise QuireError(f"--source-key names the document of one file; these paths hold {len(found)}")
        found = [(found[0][0], source_key)]
    seen: dict[str, Path] = {}
    for path, key in found:
        if key in seen:
            raise QuireError(
                f"{seen[key]} and {path} would both be the document {key!r}: ingest them in "
                "separate commands with --collection or --source-key"
            )
        seen[key] = path
    return found


def summarise(outcomes: list[Outcome], console: Console) -> int:
    warned = sum(1 for o in outcomes if o.warnings)
    table = Table("file", "outcome", "reason", *(["warnings"] if warned else []), title="Ingestion")
    styles = {"ingested": "green", "unchanged": "cyan", "empty": "yellow"}
    for outcome in outcomes:
        style = styles.get(outcome.status, "red")
        notes = ["[yellow]" + "; ".join(outcome.warnings) + "[/]"] if warned else []
        table.add_row(outcome.label, f"[{style}]{outcome.status}[/]", outcome.reason, *notes)
    console.print(table)
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    line = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    console.print(line + (f"; {warned} with warnings" if warned else ""))
    return sum(1 for o in outcomes if o.status in ("failed", "unsupported"))
