"""Ingesting a version again after its ingestion failed: from its stored bytes, as a new run.

A retry starts clean: what the failed attempt wrote (elements, chunks) goes first, because the
new run parses from the start and would otherwise write them a second time.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlmodel import Session

from quire.content.ingestion import PROGRAM, IngestState
from quire.content.models import Chunk, Document, Element, Version, VersionStatus
from quire.core.tenancy import Caller
from quire.runtime.kicks import Kicker
from quire.runtime.models import Run, RunStatus
from quire.runtime.service import create_run

# Ends that say nothing about the bytes: the run was given up on or stopped, mid-way.
ENDS_WITHOUT_AN_ANSWER = frozenset({RunStatus.failed, RunStatus.cancelled})


def retry_refusal(session: Session, version: Version) -> str | None:
    """Why `version` cannot be retried, or None when it can: its ingestion failed, or its run
    ended (failed, cancelled) before the version reached an end of its own."""
    label = f"version {version.number}"
    if version.status == VersionStatus.failed:
        return None
    if version.status in (VersionStatus.unsupported, VersionStatus.empty):
        why = f" ({version.status_reason})" if version.status_reason else ""
        return (
            f"{label} ended {version.status.value}{why}; the same bytes would end the same way, "
            "so upload the file in a form Quire can read instead"
        )
    if version.status == VersionStatus.indexed:
        return f"{label} is indexed; there is nothing to retry"
    run = session.get(Run, version.run_id) if version.run_id else None
    if run is None or run.status in ENDS_WITHOUT_AN_ANSWER:
        return None
    return (
        f"{label} is still being ingested (it is {version.status.value}, its run {run.id} is "
        f"{run.status.value}); retry it once that run has ended"
    )


def may_retry(session: Session, *, document: Document, version: Version) -> bool:
    """Whether a retry of `version` would start: what `service.retry_version` checks besides the
    caller's role, for offering the retry at all."""
    return document.deleted_at is None and retry_refusal(session, version) is None


def restart_ingestion(
    session: Session, *, version: Version, kicker: Kicker | None, owner: Caller | None
) -> Run:
    """Clear what the last attempt left and start a new ingestion run of `version` (locked by the caller)."""
    session.execute(delete(Chunk).where(Chunk.version_id == version.id))  # type: ignore[arg-type]
    session.execute(delete(Element).where(Element.version_id == version.id))  # type: ignore[arg-type]
    version.status = VersionStatus.stored
    version.status_reason = None
    version.error_code = None
    version.page_count = None
    version.element_count = 0
    version.chunk_count = 0
    version.indexed_at = None
    # No idempotency key: the version's lock and its status keep two retries from both starting.
    run, _ = create_run(
        session, program=PROGRAM, state=IngestState(version_id=version.id), kicker=kicker, owner=owner
    )
    version.run_id = run.id
    session.add(version)
    session.flush()
    return run
