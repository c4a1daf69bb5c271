"""What the checks can find about a memory version: one typed model per finding, and a registry
that the queue's flags and filters and the console's wording read.

A version stores its findings as JSON (`memory_version.findings`); `Findings` is that JSON's
shape, so a finding added here is known to the checks, the queue and the console at once (the
console's flags once missed `source_changed` because each kept its own list of strings).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


class Finding(enum.StrEnum):
    duplicate_of = "duplicate_of"
    near_duplicate_of = "near_duplicate_of"
    conflicts_with = "conflicts_with"
    injection = "injection"
    secrets = "secrets"
    source_changed = "source_changed"


class Reference(BaseModel):
    """Another memory version a finding points at."""

    version_id: uuid.UUID
    item_id: uuid.UUID
    state: str | None = None
    text: str | None = None
    similarity: float | None = None


class Screening(BaseModel):
    """What a screen matched in the text, and why that matters."""

    why: str
    matches: list[str] | None = None  # injection: the phrases
    kinds: list[str] | None = None  # secrets: the kinds of credential


class StaleSource(BaseModel):
    """A quoted document that moved on to a version without the quote."""

    document_id: uuid.UUID
    latest_version: int
    why: str


class Findings(BaseModel):
    """Everything the checks found for one version (absent: not found)."""

    duplicate_of: list[Reference] | None = None
    near_duplicate_of: list[Reference] | None = None
    conflicts_with: list[Reference] | None = None
    injection: Screening | None = None
    secrets: Screening | None = None
    source_changed: list[StaleSource] | None = None
    suggestion: str | None = None  # "merge" or "supersede": the decision the findings point to

    @classmethod
    def of(cls, stored: dict[str, Any] | None) -> Findings:
        return cls.model_validate(stored or {})

    def present(self) -> list[Finding]:
        return [finding for finding in Finding if getattr(self, finding.value)]

    def stored(self) -> dict[str, Any]:
        """As kept on the version (JSON, nothing for what was not found)."""
        dumped: dict[str, Any] = self.model_dump(mode="json", exclude_none=True)
        return dumped


@dataclass(frozen=True)
class FindingSpec:
    """How a finding reads to a reviewer."""

    finding: Finding
    label: str  # the queue's flag
    explains: str  # one sentence, plain language


REGISTRY: dict[Finding, FindingSpec] = {
    spec.finding: spec
    for spec in (
        FindingSpec(Finding.duplicate_of, "duplicate", "The same text was proposed or approved before."),
        FindingSpec(
            Finding.near_duplicate_of, "near duplicate", "An approved memory says nearly the same thing."
        ),
        FindingSpec(
            Finding.conflicts_with, "conflict", "An approved memory about the same subject says otherwise."
        ),
        FindingSpec(Finding.injection, "instructions", "It reads like instructions aimed at an agent."),
        FindingSpec(Finding.secrets, "secret", "It looks like it contains a credential."),
        FindingSpec(
            Finding.source_changed, "source changed", "A newer version of its document no longer says this."
        ),
    )
}
FLAGS: tuple[str, ...] = tuple(finding.value for finding in REGISTRY)
