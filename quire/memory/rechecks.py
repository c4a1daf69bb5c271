"""Checks that stay current: an open version's findings are computed again when what they read
changes, so the queue never flags, or fails to flag, from a world that has moved on.

The checks read other memories (the same text, the same meaning, the same slot) and the documents
a version quotes. So a version is checked again when a memory it may be compared with moves (is
proposed, approved, rejected, superseded, withdrawn, edited, merged), when a document it quotes
gets a new version, and when it comes back to review. A change of findings goes to the audit log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import text
from sqlmodel import Session, col, select

from quire.core.search.dense import similarity
from quire.memory import audit
from quire.memory.checks import NEAR_DUPLICATE_SIMILARITY, run_checks
from quire.memory.findings import REGISTRY, Finding, Findings
from quire.memory.models import MemoryItem, MemoryVersion, VersionState

# Versions whose findings a reviewer still reads before deciding.
OPEN = (
    VersionState.proposed,
    VersionState.checked,
    VersionState.in_review,
    VersionState.needs_recertification,
)
_OPEN_SQL = ", ".join(f"'{state.value}'" for state in OPEN)


def affected_by_version(
    session: Session, *, version_id: uuid.UUID, same_text: bool = True, same_slot_or_meaning: bool = True
) -> list[uuid.UUID]:
    """Open versions whose checks compare them with `version_id`: in any scope, those whose
    findings name it; in its scope, those with its text (`same_text`), and those of its slot or
    close to its meaning (`same_slot_or_meaning`: the checks compare these with approved ones)."""
    comparisons: list[str] = []
    if same_text:
        comparisons.append("v.content_hash = x.content_hash")
    if same_slot_or_meaning:
        comparisons.append("(xi.subject_key IS NOT NULL AND i.subject_key = xi.subject_key)")
        comparisons.append(f"{similarity('v.embedding', 'x.embedding')} >= :near")
    named = (
        f"SELECT v.id FROM memory_version v WHERE v.state IN ({_OPEN_SQL}) AND v.id <> :version_id "
        "AND position(CAST(:version_id AS text) IN CAST(v.findings AS text)) > 0"
    )
    compared = (
        "SELECT v.id FROM memory_version v JOIN memory_item i ON i.id = v.item_id "
        "JOIN memory_version x ON x.id = :version_id JOIN memory_item xi ON xi.id = x.item_id "
        f"WHERE v.state IN ({_OPEN_SQL}) AND v.id <> x.id "
        "AND i.scope = xi.scope AND i.scope_ref IS NOT DISTINCT FROM xi.scope_ref "
        f"AND ({' OR '.join(comparisons)})"
    )
    statement = f"{named} UNION {compared}" if comparisons else named
    rows = session.execute(
        text(statement), {"version_id": version_id, "near": NEAR_DUPLICATE_SIMILARITY}
    ).all()
    return [row[0] for row in rows]


def affected_by_document(session: Session, *, document_id: uuid.UUID) -> list[uuid.UUID]:
    """Open versions that quote the document."""
    rows = session.execute(
        text(
            "SELECT DISTINCT v.id FROM memory_version v JOIN memory_evidence e ON e.version_id = v.id "
            f"WHERE e.document_id = :document_id AND v.state IN ({_OPEN_SQL})"
        ),
        {"document_id": document_id},
    ).all()
    return [row[0] for row in rows]


def recheck(
    session: Session, *, version_ids: Iterable[uuid.UUID], because: str, wait: bool = True
) -> list[MemoryVersion]:
    """Run the checks again on those of `version_ids` still open; store and audit what changed.

    Rechecks run one at a time with the tenant's memory moves: they take the lock every move
    takes (`audit.serialise`) before they read, so what they compute includes every move that
    committed before, and a move that comes after waits and then checks again what it affects.
    (The lock is the tenant's, not the slot's: the checks also compare texts and meanings across
    slots.) Each version is then locked. From inside a memory's own move (`wait` False) a version
    that another transaction holds is skipped rather than waited for: that transaction is a move
    of the version itself, waiting for the lock this one holds, and it checks the version again
    once it has the lock (`after_move`).
    """
    ids = sorted(set(version_ids))
    if not ids:
        return []
    for tenant_id in _tenants_of(session, ids):
        audit.serialise(session, tenant_id=tenant_id)
    locked = session.exec(
        select(MemoryVersion)
        .where(col(MemoryVersion.id).in_(ids), col(MemoryVersion.state).in_(OPEN))
        .order_by(col(MemoryVersion.id))
        .with_for_update(skip_locked=not wait)
        .execution_options(populate_existing=True)
    ).all()
    changed: list[MemoryVersion] = []
    for version in locked:
        item = session.get(MemoryItem, version.item_id)
        if item is None:
            continue
        found = run_checks(session, version=version, item=item)
        if found == (version.findings or {}):
            continue
        _record(
            session, version, before=Findings.of(version.findings), after=Findings.of(found), because=because
        )
        version.findings = found
        session.add(version)
        changed.append(version)
    session.flush()
    return changed


def _tenants_of(session: Session, version_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """The tenants the versions belong to (a version never changes tenant: read without a lock)."""
    rows = session.execute(
        select(MemoryVersion.tenant_id).where(col(MemoryVersion.id).in_(version_ids)).distinct()
    ).all()
    return sorted(row[0] for row in rows)


def _record(
    session: Session, version: MemoryVersion, *, before: Findings, after: Findings, because: str
) -> None:
    added = [f for f in after.present() if f not in before.present()]
    removed = [f for f in before.present() if f not in after.present()]
    reasons = [_explain(after, finding) for finding in added]
    audit.record(
        session,
        tenant_id=version.tenant_id,
        type="memory.flagged" if added else "memory.rechecked",
        actor="system",
        item_id=version.item_id,
        version_id=version.id,
        reason="; ".join(reasons) if reasons else f"checked again: {because}",
        data={
            **({"finding": added[0].value} if added else {}),
            "added": [f.value for f in added],
            "removed": [f.value for f in removed],
            "because": because,
        },
    )


def _explain(findings: Findings, finding: Finding) -> str:
    if finding == Finding.source_changed and findings.source_changed:
        return findings.source_changed[0].why
    return REGISTRY[finding].explains


# The states in which the duplicate check counts a version (see memory/checks.py).
COUNTED = {*OPEN, VersionState.approved}


def after_move(session: Session, *, version: MemoryVersion, before: VersionState) -> list[MemoryVersion]:
    """Check again the open versions a move of `version` may change the findings of, and the
    version itself when it is open after the move.

    Duplicates count every version proposed, open or approved, so its text matters when it
    enters or leaves those states (or is checked for the first time); conflicts and near
    duplicates compare only with approved versions, so its slot and meaning matter when it
    becomes or stops being approved; findings that name it matter always.
    """
    after = version.state
    changed: list[MemoryVersion] = []
    if after in OPEN and before != VersionState.proposed:
        # Another move may have skipped it while this one held it (`recheck`). Not after its
        # check, which read under the same lock a moment ago.
        itself = f"it is now {after.value.replace('_', ' ')}"
        changed += recheck(session, version_ids=[version.id], because=itself, wait=False)
    if (before, after) == (VersionState.checked, VersionState.in_review):
        return changed  # submitted for review: nothing another check reads has changed
    same_text = before == VersionState.proposed or (before in COUNTED) != (after in COUNTED)
    same_slot_or_meaning = VersionState.approved in (before, after)
    ids = affected_by_version(
        session, version_id=version.id, same_text=same_text, same_slot_or_meaning=same_slot_or_meaning
    )
    because = f"a memory it is compared with is now {after.value.replace('_', ' ')}"
    return changed + recheck(session, version_ids=ids, because=because, wait=False)


def after_document_version(session: Session, *, document_id: uuid.UUID, number: int) -> list[MemoryVersion]:
    """Check again the open versions that quote a document that has a new version."""
    ids = affected_by_document(session, document_id=document_id)
    return recheck(session, version_ids=ids, because=f"its document has a new version ({number})")
