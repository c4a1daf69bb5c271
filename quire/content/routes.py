"""HTTP API of the content layer: upload, documents, versions, files, diffs, search."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile
from fastapi.responses import JSONResponse

from quire.content import comparison, pages, retry, service, uploads
from quire.content.environment import ContentDep
from quire.content.errors import InvalidUpload, UploadTooLarge
from quire.content.models import (
    CollectionPublic,
    CollectionsPublic,
    DocumentDetail,
    DocumentsPublic,
    DocumentVersionPublic,
    SearchResults,
    UploadResult,
    VersionChunks,
    VersionDetail,
    VersionDiff,
    VersionElements,
    VersionStatus,
)
from quire.content.search import Scope, search
from quire.core.deps import ContributorDep, ReaderDep, TenantSessionDep
from quire.core.errors import InvalidRequest
from quire.core.pages import DEFAULT_LIMIT, CursorQuery, LimitQuery
from quire.runtime.routes import KickerDep

router = APIRouter(prefix="/v1", tags=["documents"])

READ_CHUNK = 1024 * 1024
# Version numbers are PostgreSQL integers: a larger one names no version, and is refused as such.
MAX_VERSION = 2**31 - 1


def _parse_metadata(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as error:
        raise InvalidUpload(f"metadata is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise InvalidUpload("metadata must be a JSON object")
    return value


def _parse_tags(raw: list[str] | None) -> tuple[str, ...]:
    tags = [t.strip() for item in raw or [] for t in item.split(",")]
    return tuple(sorted({t[:100] for t in tags if t}))


@router.post(
    "/documents",
    status_code=202,
    response_model=UploadResult,
    responses={
        200: {"model": UploadResult, "description": "Same bytes as the latest version"},
        422: {"description": "The file is empty (`empty_file`) or the form malformed; nothing was stored"},
        413: {"description": "The file is over the upload limit (QUIRE_MAX_UPLOAD_MB); nothing was stored"},
    },
)
async def upload_document(
    caller: ContributorDep,
    session: TenantSessionDep,
    kicker: KickerDep,
    environment: ContentDep,
    file: Annotated[UploadFile, File(description="The document.")],
    collection: Annotated[str, Form(max_length=200)] = "default",
    title: Annotated[str | None, Form(max_length=1000)] = None,
    source_key: Annotated[str | None, Form(max_length=1000, description="Defaults to the file name.")] = None,
    tags: Annotated[list[str] | None, Form(description="Tags, repeated or comma-separated.")] = None,
    metadata: Annotated[str | None, Form(description="A JSON object.")] = None,
) -> JSONResponse:
    """Upload a document: 202 and a new version when the bytes are new, 200 when unchanged, 202
    when they are the bytes of the latest version and its ingestion failed (it is retried)."""
    data = bytearray()
    while chunk := await file.read(READ_CHUNK):
        data.extend(chunk)
        if len(data) > environment.max_upload_bytes:
            raise UploadTooLarge(f"the file is over the limit of {environment.max_upload_bytes} bytes")
    result = uploads.upload(
        session,
        request=uploads.UploadRequest(
            data=bytes(data),
            filename=file.filename,
            collection=collection,
            source_key=source_key,
            title=title,
            tags=_parse_tags(tags),
            metadata=_parse_metadata(metadata),
            declared_type=file.content_type,
        ),
        blobs=environment.blobs,
        kicker=kicker,
        created_by=caller.principal_id,
        max_bytes=environment.max_upload_bytes,
        uploader=caller,
    )
    session.commit()
    started = result.created or result.retried
    return JSONResponse(result.model_dump(mode="json"), status_code=202 if started else 200)


@router.get("/documents")
def list_documents(
    caller: ReaderDep,
    session: TenantSessionDep,
    collection: str | None = None,
    tag: str | None = None,
    title: Annotated[str | None, Query(description="Part of the title.")] = None,
    status: Annotated[
        VersionStatus | None,
        Query(description="Only documents whose latest version has this status (`failed`: to retry)."),
    ] = None,
    include_deleted: bool = False,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> DocumentsPublic:
    """Documents, newest first; `status` keeps those whose latest version has that status."""
    page = service.page_documents(
        session,
        collection=collection,
        tag=tag,
        title=title,
        status=status,
        include_deleted=include_deleted,
        cursor=cursor,
        limit=limit,
    )
    return DocumentsPublic(
        data=[service.document_public(d) for d in page.rows], count=page.count, next_cursor=page.next_cursor
    )


@router.get("/documents/{document_id}")
def get_document(document_id: uuid.UUID, caller: ReaderDep, session: TenantSessionDep) -> DocumentDetail:
    """A document with its versions and their ingestion status."""
    return service.describe_document(session, document_id=document_id)


@router.get("/documents/{document_id}/versions/{number}")
def get_document_version(
    document_id: uuid.UUID,
    number: Annotated[int, Path(ge=1, le=MAX_VERSION)],
    caller: ReaderDep,
    session: TenantSessionDep,
) -> VersionDetail:
    """A version's elements, in order, with types, pages, section paths and table HTML."""
    return service.describe_version(session, document_id=document_id, number=number)


@router.get(
    "/documents/{document_id}/versions/{number}/elements",
    responses={404: {"description": "The document, or its version, does not exist"}},
)
def list_version_elements(
    document_id: uuid.UUID,
    number: Annotated[int, Path(ge=1, le=MAX_VERSION)],
    caller: ReaderDep,
    session: TenantSessionDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Items per page.")] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> VersionElements:
    """A version's elements in order, a page at a time: types, pages, sections, text, table HTML."""
    return pages.element_page(session, document_id=document_id, number=number, limit=limit, cursor=cursor)


@router.get(
    "/documents/{document_id}/versions/{number}/chunks",
    responses={404: {"description": "The document, or its version, does not exist"}},
)
def list_version_chunks(
    document_id: uuid.UUID,
    number: Annotated[int, Path(ge=1, le=MAX_VERSION)],
    caller: ReaderDep,
    session: TenantSessionDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Items per page.")] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> VersionChunks:
    """A version's chunks in order, a page at a time, each with the elements it covers."""
    return pages.chunk_page(session, document_id=document_id, number=number, limit=limit, cursor=cursor)


@router.post(
    "/documents/{document_id}/versions/{number}/retry",
    status_code=202,
    responses={
        409: {
            "description": "The version's ingestion did not fail, is still running, or would end "
            "the same way again (unsupported, empty); or the document is deleted"
        }
    },
)
def retry_document_version(
    document_id: uuid.UUID,
    number: Annotated[int, Path(ge=1, le=MAX_VERSION)],
    caller: ContributorDep,
    session: TenantSessionDep,
    kicker: KickerDep,
) -> DocumentVersionPublic:
    """Ingest a failed version again from its stored bytes: a new run, whose id the version carries."""
    version = retry.retry_version(
        session, document_id=document_id, number=number, kicker=kicker, caller=caller
    )
    public = DocumentVersionPublic.model_validate(version)
    session.commit()
    return public


@router.get(
    "/documents/{document_id}/versions/{number}/file",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The original bytes"}},
)
def get_document_version_file(
    document_id: uuid.UUID,
    number: Annotated[int, Path(ge=1, le=MAX_VERSION)],
    caller: ReaderDep,
    session: TenantSessionDep,
    environment: ContentDep,
) -> Response:
    """The original bytes of a version, exactly as uploaded."""
    data, version = service.version_file(
        session, document_id=document_id, number=number, blobs=environment.blobs
    )
    quoted = version.filename.replace('"', "")
    return Response(
        content=data,
        media_type=version.content_type or "application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{quoted}"',
            "X-Content-SHA256": version.sha256,
        },
    )


@router.get("/documents/{document_id}/diff")
def diff_document_versions(
    document_id: uuid.UUID,
    caller: ReaderDep,
    session: TenantSessionDep,
    from_: Annotated[int, Query(alias="from", ge=1, le=MAX_VERSION)],
    to: Annotated[int, Query(ge=1, le=MAX_VERSION)],
) -> VersionDiff:
    """Elements added, removed and changed between two versions."""
    return comparison.diff_versions(session, document_id=document_id, from_number=from_, to_number=to)


@router.delete("/documents/{document_id}", status_code=204, response_class=Response)
def delete_document(
    document_id: uuid.UUID,
    caller: ContributorDep,
    session: TenantSessionDep,
    kicker: KickerDep,
    environment: ContentDep,
    reason: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """Take a document out of search at once (204; again: 204); its versions and bytes stay for
    audit, and GET still shows it, with `deleted_at`."""
    service.delete_document(
        session, document_id=document_id, reason=reason, kicker=kicker, follow_ups=environment.on_delete
    )
    session.commit()
    return Response(status_code=204)


@router.get("/collections")
def list_collections(
    caller: ReaderDep,
    session: TenantSessionDep,
    limit: LimitQuery = DEFAULT_LIMIT,
    cursor: CursorQuery = None,
) -> CollectionsPublic:
    """Collections by name, each with its number of live documents."""
    page = service.page_collections(session, cursor=cursor, limit=limit)
    return CollectionsPublic(
        data=[CollectionPublic(name=name, documents=count) for name, count in page.rows],
        count=page.count,
        next_cursor=page.next_cursor,
    )


@router.get(
    "/search",
    tags=["search"],
    responses={404: {"description": "`document_id`, or its `version`, does not exist"}},
)
def search_documents(
    caller: ReaderDep,
    session: TenantSessionDep,
    environment: ContentDep,
    q: Annotated[str, Query(min_length=1, max_length=2000)],
    collection: Annotated[list[str] | None, Query()] = None,
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    mode: Annotated[str, Query(pattern="^(hybrid|lexical|dense)$")] = "hybrid",
    document_id: uuid.UUID | None = None,
    version: Annotated[
        int | None, Query(ge=1, le=MAX_VERSION, description="Search this version of document_id.")
    ] = None,
) -> SearchResults:
    """Hybrid search over the latest live version of every document; hits carry citations."""
    version_id = None
    if version is not None:
        if document_id is None:
            raise InvalidRequest("`version` needs `document_id`")
        version_id = service.get_version(session, document_id=document_id, number=version).id
    return search(
        session,
        query=q,
        embedder=environment.embedder,
        scope=Scope(collections=tuple(collection or ()), document_id=document_id, version_id=version_id),
        k=k,
        mode=mode,
        dense_weight=environment.dense_weight,
        ef_search=environment.search_ef,
    )
