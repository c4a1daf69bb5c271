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
    # The passage of the latest version that took the quoted one's place (the same element,
    # changed), when there is one: what the document says now.
    element_id: uuid.UUID | None = None
    passage: str | None = None


class Findings(BaseModel):
    """Everything the checks found for one version (absent: not found)."""

    duplicate_of: list[Reference] | None = None
    near_duplicate_of: list[Reference] | None = None
    conflicts_with: list[Reference] | None = None
    injection: Screening | None = None
    secrets: Screening | None = None
    source_changed: list[StaleSource] | None = None
    suggestion: str | None = None  # the decision the findings point to (see `recommend`)

    @classmethod
    def of(cls, stored: dict[str, Any] | None) -> Findings:
        return cls.model_validate(stored or {})

    def present(self) -> list[Finding]:
        return [finding for finding in Finding if getattr(self, finding.value)]

    def worst(self) -> Finding | None:
        """The most serious finding present, in the order of SEVERITY."""
        present = self.present()
        return next((finding for finding in SEVERITY if finding in present), None)

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

# Most serious first: the queue sorts by it, and the recommendation follows it.
SEVERITY: tuple[Finding, ...] = (
    Finding.injection,
    Finding.secrets,
    Finding.source_changed,
    Finding.conflicts_with,
    Finding.duplicate_of,
    Finding.near_duplicate_of,
)


@dataclass(frozen=True)
class Recommendation:
    """The one decision the findings point to, and why, in plain words."""

    decision: str  # approve, reject, merge or supersede
    why: str
    target: Reference | None = None  # the memory to merge into or to supersede


def recommend(findings: Findings) -> Recommendation:
    """One decision for a version, from its findings: the most serious finding decides."""
    if findings.injection:
        return Recommendation("reject", "It reads like instructions aimed at an agent, not knowledge.")
    if findings.secrets:
        return Recommendation("reject", "It contains what looks like a credential; agents would read it.")
    if findings.source_changed:
        stale = findings.source_changed[0]
        return Recommendation(
            "reject", f"Version {stale.latest_version} of its document no longer says this."
        )
    if findings.conflicts_with:
        return Recommendation(
            "supersede",
            "An approved memory of the same subject says otherwise: approve this one in its place "
            "if this one is right.",
            findings.conflicts_with[0],
        )
    approved = [ref for ref in findings.duplicate_of or [] if ref.state == "approved"]
    if approved:
        return Recommendation(
            "merge", "The same text is approved already: merge gives that memory this evidence.", approved[0]
        )
    if findings.near_duplicate_of:
        return Recommendation(
            "merge",
            "An approved memory says nearly the same: merge gives it this evidence.",
            findings.near_duplicate_of[0],
        )
    if findings.duplicate_of:
        return Recommendation(
            "approve",
            "The same text also waits for review; once one is decided, the other is checked again.",
        )
    return Recommendation("approve", "The checks found nothing against it.")
