"""Documents in the console: what was ingested and how it ended, each document's versions, a
version's elements, two versions side by side, and a retry of a failed ingestion.

Every role may look, as the API lets every role read documents. A retry goes through
`quire.content.retry.retry_version`, which checks the caller's role where the retry is made,
as it does for the API.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from quire.app.console.deps import ConsoleSessionDep
from quire.app.console.errors import ConsoleError
from quire.app.console.evidence import version_elements
from quire.app.console.memory import as_page
from quire.app.console.pages import redirect, render, safe_next, sessions_of
from quire.app.errors import status_for
from quire.content import retry
from quire.content import service as content
from quire.content.comparison import Change, Pair, compare_versions
from quire.content.models import Document, Version, VersionStatus
from quire.content.overview import latest_status_counts, list_latest_versions, versions_of
from quire.content.retry import may_retry
from quire.content.routes import MAX_VERSION
from quire.core.deps import DatabaseDep
from quire.core.errors import QuireError
from quire.core.models import Role
from quire.runtime.routes import KickerDep

router = APIRouter(prefix="/console", include_in_schema=False)

DOCUMENTS = "/console/documents"
PAGE_SIZE = 50
# Unchanged elements in a row, at least this many, fold into one line of the diff.
FOLD_SAME = 3

VersionNumber = Annotated[int, Path(ge=1, le=MAX_VERSION)]


@dataclass(frozen=True)
class DocumentFilters:
    status: str = ""
    collection: str = ""
    offset: int = 0

    @classmethod
    def parse(cls, params: Any) -> DocumentFilters:
        """Filters from query parameters; values the list does not know are dropped."""
        status = params.get("status", "")
        try:
            offset = max(0, int(params.get("offset", 0)))
        except ValueError:
            offset = 0
        return cls(
            status=status if status in {s.value for s in VersionStatus} else "",
            collection=str(params.get("collection", ""))[:200],
            offset=offset,
        )

    def query_string(self, **changes: Any) -> str:
        values = {"status": self.status, "collection": self.collection, "offset": self.offset, **changes}
        return urlencode({k: v for k, v in values.items() if v not in ("", 0)})


@dataclass(frozen=True)
class Line:
    """A document as the list shows it: its latest version, and whether a retry would start."""

    document: Document
    version: Version
    retryable: bool


def document_path(document_id: uuid.UUID) -> str:
    return f"{DOCUMENTS}/{document_id}"


def version_path(document_id: uuid.UUID, number: int) -> str:
    return f"{DOCUMENTS}/{document_id}/versions/{number}"


@router.get("/documents")
def documents_page(request: Request, console: ConsoleSessionDep, database: DatabaseDep) -> HTMLResponse:
    filters = DocumentFilters.parse(request.query_params)
    with database.tenant_session(console.caller.tenant_id) as session:
        rows, count = list_latest_versions(
            session,
            status=VersionStatus(filters.status) if filters.status else None,
            collection=filters.collection or None,
            limit=PAGE_SIZE,
            offset=filters.offset,
        )
        lines = [
            Line(row.document, row.latest, may_retry(session, document=row.document, version=row.latest))
            for row in rows
        ]
        return render(
            request,
            "documents.html",
            session=console,
            lines=lines,
            count=count,
            filters=filters,
            status_counts=latest_status_counts(session, collection=filters.collection or None),
            statuses=[s.value for s in VersionStatus],
            collections=[name for name, _ in content.list_collections(session)],
            can_retry=console.caller.allows(Role.contributor),
            here=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            page_size=len(lines),
            step=PAGE_SIZE,
        )


@router.get("/documents/{document_id}")
def document_page(
    document_id: uuid.UUID, request: Request, console: ConsoleSessionDep, database: DatabaseDep
) -> HTMLResponse:
    with database.tenant_session(console.caller.tenant_id) as session, as_page():
        document = content.get_document(session, document_id=document_id)
        versions = versions_of(session, document_id=document_id)
        return render(
            request,
            "document.html",
            session=console,
            document=document,
            versions=list(reversed(versions)),  # newest first
            retryable={v.number for v in versions if may_retry(session, document=document, version=v)},
            can_retry=console.caller.allows(Role.contributor),
            api_path=f"/v1/documents/{document_id}",
        )


@router.get("/documents/{document_id}/versions/{number}")
def document_version_page(
    document_id: uuid.UUID,
    number: VersionNumber,
    request: Request,
    console: ConsoleSessionDep,
    database: DatabaseDep,
    mark: Annotated[uuid.UUID | None, Query()] = None,
    start: Annotated[int | None, Query(ge=0)] = None,
    end: Annotated[int | None, Query(ge=0)] = None,
) -> HTMLResponse:
    """A document version's elements, in order, with the cited span marked."""
    with database.tenant_session(console.caller.tenant_id) as session, as_page():
        version = content.get_version(session, document_id=document_id, number=number)
        document = content.get_document(session, document_id=document_id)
        elements = version_elements(session, version=version, marks={mark: (start, end)} if mark else {})
        return render(
            request,
            "version.html",
            session=console,
            document=document,
            version=version,
            elements=elements,
            retryable=may_retry(session, document=document, version=version),
            can_retry=console.caller.allows(Role.contributor),
            api_path=f"/v1/documents/{document_id}/versions/{number}",
        )


@dataclass
class Block:
    """Pairs of the diff shown together: one changed pair, or a run of unchanged ones."""

    same: bool
    pairs: list[Pair] = field(default_factory=list)
    marked: bool = False  # holds the element a link pointed to: never folded away

    @property
    def folded(self) -> bool:
        return self.same and not self.marked and len(self.pairs) >= FOLD_SAME


def blocks_of(pairs: list[Pair], mark: uuid.UUID | None = None) -> list[Block]:
    blocks: list[Block] = []
    for pair in pairs:
        same = pair.change == Change.same
        if not (same and blocks and blocks[-1].same):
            blocks.append(Block(same=same))
        blocks[-1].pairs.append(pair)
        blocks[-1].marked |= pair.element_id == mark
    return blocks


@router.get("/documents/{document_id}/versions/{number}/diff")
def diff_page(
    document_id: uuid.UUID,
    number: VersionNumber,
    request: Request,
    console: ConsoleSessionDep,
    database: DatabaseDep,
    against: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
    mark: Annotated[uuid.UUID | None, Query()] = None,
) -> HTMLResponse:
    """The version beside an earlier one (the one before it, unless `against` names another), with
    the element `mark` names (cited evidence) marked."""
    base = against if against is not None else number - 1
    if base < 1:
        raise ConsoleError(
            f"version {number} is the document's first: there is no earlier version to compare it with",
            status=404,
        )
    with database.tenant_session(console.caller.tenant_id) as session, as_page():
        document = content.get_document(session, document_id=document_id)
        comparison = compare_versions(session, document_id=document_id, from_number=base, to_number=number)
        return render(
            request,
            "diff.html",
            session=console,
            document=document,
            comparison=comparison,
            blocks=blocks_of(comparison.pairs, mark),
            mark=mark,
            counts={change.value: comparison.count(change) for change in Change},
            api_path=f"/v1/documents/{document_id}/diff?from={base}&to={number}",
        )


@router.post("/documents/{document_id}/versions/{number}/retry")
def retry_version(
    document_id: uuid.UUID,
    number: VersionNumber,
    request: Request,
    console: ConsoleSessionDep,
    database: DatabaseDep,
    kicker: KickerDep,
    csrf: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
) -> RedirectResponse:
    """Ingest a failed version again from its stored bytes, as the API's retry does."""
    sessions_of(request).check_csrf(console, csrf)
    back = safe_next(next, document_path(document_id))
    with database.tenant_session(console.caller.tenant_id) as session:
        try:
            version = retry.retry_version(
                session, document_id=document_id, number=number, kicker=kicker, caller=console.caller
            )
            run_id = version.run_id
            session.commit()
        except QuireError as refused:
            session.rollback()
            status = status_for(refused)
            if status in (403, 404):  # not the caller's to retry, or not there: a page, as for a GET
                raise ConsoleError(str(refused), status=status) from None
            return redirect(request, back, flash=f"Not retried: {refused}", kind="error")
    message = f"Retrying version {number}: its ingestion started again from the stored file (run {run_id})."
    return redirect(request, back, flash=message)
