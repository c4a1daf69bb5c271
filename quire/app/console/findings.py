"""A version's findings as a reviewer reads them: one plain sentence per finding, from the check
registry (memory/findings.py), with links to what each names; and the one decision they point to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from quire.content import service as content
from quire.core.db import TenantSession
from quire.core.errors import QuireError
from quire.memory import service
from quire.memory.findings import (
    REGISTRY,
    SEVERITY,
    Finding,
    Findings,
    Recommendation,
    Reference,
    StaleSource,
    recommend,
)
from quire.memory.titles import title

# How a finding introduces the memories it names.
NAMES = {
    Finding.duplicate_of: "Duplicate of",
    Finding.near_duplicate_of: "Nearly the same as",
    Finding.conflicts_with: "Conflicts with",
}
DECISION_NAMES = {
    "approve": "Approve",
    "recertify": "Re-certify",
    "reject": "Reject",
    "merge": "Merge",
    "supersede": "Approve and supersede",
}


@dataclass
class Link:
    text: str
    href: str | None = None
    note: str = ""
    quoted: bool = False  # words of the memory itself, shown as a quotation


@dataclass
class FindingLine:
    finding: str  # the flag
    label: str
    explains: str
    lead: str = ""  # how the links are introduced
    links: list[Link] = field(default_factory=list)


@dataclass
class Advice:
    decision: str  # an action the page offers, or "" when it offers none that fits
    name: str
    why: str
    target: Link | None = None


def findings_view(session: TenantSession, stored: dict[str, Any]) -> list[FindingLine]:
    """The findings present, most serious first, each with what it names."""
    findings = Findings.of(stored)
    lines = []
    for finding in (f for f in SEVERITY if f in findings.present()):
        spec = REGISTRY[finding]
        line = FindingLine(finding=finding.value, label=spec.label, explains=spec.explains)
        if finding in NAMES:
            line.lead = NAMES[finding]
            line.links = [_memory_link(session, ref) for ref in getattr(findings, finding.value) or []]
        elif finding == Finding.injection and findings.injection:
            line.lead = "The phrases:"
            line.links = [Link(text=match, quoted=True) for match in findings.injection.matches or []]
        elif finding == Finding.secrets and findings.secrets:
            line.lead = "Of the kind:"
            line.links = [Link(text=kind.replace("_", " ")) for kind in findings.secrets.kinds or []]
        elif finding == Finding.source_changed:
            line.lead = "What the document says now:"
            line.links = [_source_link(session, stale) for stale in findings.source_changed or []]
        lines.append(line)
    return lines


def _memory_link(session: TenantSession, ref: Reference) -> Link:
    version = service.get_version(session, ref.version_id)
    text = version.text if version is not None else ref.text or "a memory"
    state = version.state.value if version is not None else ref.state or ""
    notes = [state.replace("_", " ")] if state else []
    if ref.similarity is not None:
        notes.append(f"{round(ref.similarity * 100)}% alike")
    return Link(text=title(text), href=f"/console/memory/{ref.item_id}", note=", ".join(notes))


def _source_link(session: TenantSession, stale: StaleSource) -> Link:
    try:
        name = content.get_document(session, document_id=stale.document_id).title
    except QuireError:
        name = "its document"
    href = f"/console/documents/{stale.document_id}/versions/{stale.latest_version}"
    if stale.element_id:
        href += f"?mark={stale.element_id}#e-{stale.element_id}"
    if stale.passage:
        note = f"{name}, version {stale.latest_version}"
        return Link(text=title(stale.passage, size=300), href=href, note=note, quoted=True)
    return Link(
        text=f"{name}, version {stale.latest_version}",
        href=href,
        note="the quoted passage is no longer in it",
    )


def recommended(session: TenantSession, stored: dict[str, Any], actions: Sequence[str]) -> Advice:
    """The recommended decision, as one of the page's `actions` (approve is re-certify where a
    memory is due for it); none when the page offers no decision that fits."""
    found: Recommendation = recommend(Findings.of(stored))
    decision = found.decision
    if decision == "approve" and "approve" not in actions and "recertify" in actions:
        decision = "recertify"
    target = _memory_link(session, found.target) if found.target is not None else None
    if decision not in actions:
        return Advice(decision="", name=DECISION_NAMES.get(decision, decision), why=found.why, target=target)
    return Advice(decision=decision, name=DECISION_NAMES[decision], why=found.why, target=target)
