"""The built-in tools: Quire's content and governed memory, as an agent uses them."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from quire.agent.citations import SourceCitation, numbered_text
from quire.agent.context import RESULT_LIMIT_CHARS
from quire.agent.tools.base import ToolContext, ToolOutput, tool
from quire.content import service as content_service
from quire.content.comparison import diff_versions
from quire.content.environment import content_of
from quire.content.search import Scope
from quire.content.search import search as content_search
from quire.core.models import Role
from quire.core.tenancy import Caller
from quire.memory.models import EvidenceIn, MemoryKind, MemoryProposal
from quire.memory.proposals import propose
from quire.memory.recall import Reader, recall
from quire.runtime.service import step_result


class SearchArgs(BaseModel):
    query: str = Field(min_length=1, max_length=1000, description="What to look for, in plain words.")
    collections: list[str] = Field(
        default_factory=list, description="Only these collections (default: the run's)."
    )
    k: int = Field(default=5, ge=1, le=20, description="How many passages.")


@tool(
    summary="Search the organisation's documents for passages about a question.",
    tags=("content", "search", "documents"),
    examples=({"query": "how many days of holiday do employees get"},),
)
def search_content(ctx: ToolContext, args: SearchArgs) -> ToolOutput:
    """Hybrid (keyword and meaning) search over the latest version of every document. Each hit
    is numbered and carries its document, version, section and pages; cite it by its number."""
    environment = content_of(ctx.services)
    results = content_search(
        ctx.session,
        query=args.query,
        embedder=environment.embedder,
        scope=Scope(collections=tuple(args.collections or ctx.collections)),
        k=args.k,
        dense_weight=environment.dense_weight,
        ef_search=environment.search_ef,
    )
    citations = [
        SourceCitation(
            kind="content",
            title=hit.citation.title,
            quote=hit.text,
            score=hit.score,
            document_id=hit.citation.document_id,
            version_id=hit.citation.version_id,
            version_number=hit.citation.version,
            chunk_id=hit.citation.chunk_id,
            element_ids=hit.citation.element_ids,
            pages=hit.citation.pages,
            section_path=hit.citation.section,
        )
        for hit in results.hits
    ]
    if not citations:
        return ToolOutput(content=f"No passage matches {args.query!r}.")
    # The passages follow under the numbers the run gives them (citations.numbered_text).
    return ToolOutput(content=f"{len(citations)} passages for {args.query!r}:", citations=citations)


class SectionArgs(BaseModel):
    document_id: uuid.UUID = Field(description="The document, from a search hit.")
    element_id: uuid.UUID = Field(description="Any element of the section, from a search hit.")


@tool(summary="Read the whole section of a document around a passage.", tags=("content", "read", "documents"))
def read_section(ctx: ToolContext, args: SectionArgs) -> ToolOutput:
    """Returns every element of the section that holds the element, in the latest version."""
    document = content_service.get_document(ctx.session, document_id=args.document_id)
    if document.latest_version_id is None:
        return ToolOutput(content="That document has no searchable version.", is_error=True)
    version = content_service.version_by_id(ctx.session, document.latest_version_id)
    if version is None:
        return ToolOutput(content="That document has no searchable version.", is_error=True)
    elements = content_service.elements_of(ctx.session, version.id)
    anchor = next((e for e in elements if e.element_id == args.element_id), None)
    if anchor is None:
        return ToolOutput(content="That element is not in the document's latest version.", is_error=True)
    path = anchor.section_path if anchor.type != "title" else [*anchor.section_path, anchor.text]
    section = [
        e for e in elements if e.section_path[: len(path)] == path or e.element_id == anchor.element_id
    ]
    body = "\n\n".join(e.text for e in section)
    citation = SourceCitation(
        kind="content",
        title=document.title,
        quote=body,
        document_id=document.id,
        version_id=version.id,
        version_number=version.number,
        element_ids=[e.element_id for e in section],
        pages=sorted({e.page for e in section if e.page is not None}),
        section_path=list(path),
    )
    return ToolOutput(content="The whole section:", citations=[citation])


class CompareArgs(BaseModel):
    document_id: uuid.UUID
    from_version: int = Field(ge=1)
    to_version: int = Field(ge=1)


@tool(summary="Show what changed between two versions of a document.", tags=("content", "versions", "diff"))
def compare_versions(ctx: ToolContext, args: CompareArgs) -> ToolOutput:
    """Elements added, removed and changed between two versions."""
    diff = diff_versions(
        ctx.session, document_id=args.document_id, from_number=args.from_version, to_number=args.to_version
    )
    lines = [f"From version {diff.from_version} to {diff.to_version}: {diff.unchanged} elements unchanged."]
    lines += [f"+ added: {c.after}" for c in diff.added]
    lines += [f"- removed: {c.before}" for c in diff.removed]
    lines += [f"~ changed: {c.before!r} -> {c.after!r}" for c in diff.changed]
    return ToolOutput(content="\n".join(lines), data=diff.model_dump(mode="json"))


class RecallArgs(BaseModel):
    query: str = Field(min_length=1, max_length=1000)
    k: int = Field(default=5, ge=1, le=20)


@tool(
    summary="Recall approved organisational memory (facts, rules, preferences) about a question.",
    tags=("memory", "recall", "facts"),
)
def recall_memory(ctx: ToolContext, args: RecallArgs) -> ToolOutput:
    """Only memories a person approved, in effect now, in scopes this run may read, each with the
    passage it comes from. What was recalled is recorded with the run."""
    environment = content_of(ctx.services)
    results = recall(
        ctx.session,
        query=args.query,
        reader=Reader(principal_id=ctx.principal_id, agent=ctx.agent, collections=tuple(ctx.collections)),
        embedder=environment.embedder,
        k=args.k,
        dense_weight=environment.recall_dense_weight,
        run_id=ctx.run.run_id,
        step_seq=ctx.run._current_seq,
    )
    if not results.hits:
        return ToolOutput(content=f"No approved memory about {args.query!r}.")
    citations = [
        SourceCitation(
            kind="memory",
            title=hit.title,
            quote=hit.text,
            score=hit.score,
            memory_item_id=hit.item_id,
            memory_version_id=hit.version_id,
            evidence=[e.model_dump(mode="json") for e in hit.evidence],
        )
        for hit in results.hits
    ]
    return ToolOutput(content=f"{len(citations)} approved memories:", citations=citations)


class ProposeArgs(BaseModel):
    text: str = Field(
        min_length=5, max_length=2000, description="The fact, rule or preference, stated plainly."
    )
    kind: MemoryKind = MemoryKind.fact
    subject_key: str | None = Field(
        default=None, description="The slot it fills, e.g. 'travel: economy class'."
    )
    document_id: uuid.UUID | None = Field(default=None, description="The document that says so.")
    quote: str | None = Field(default=None, description="The exact passage of that document.")


@tool(
    summary="Propose a new memory, with its evidence; a person reviews it before anyone uses it.",
    tags=("memory", "propose", "write"),
    role=Role.contributor,
    side_effects=True,
    requires_approval=False,
)
def propose_memory(ctx: ToolContext, args: ProposeArgs) -> ToolOutput:
    """The proposal cites this run's step as evidence, and the document passage when given."""
    evidence = [EvidenceIn(run_id=ctx.run.run_id, note="proposed by an agent run")]
    if args.document_id is not None and args.quote:
        evidence.insert(0, EvidenceIn(document_id=args.document_id, quote=args.quote))
    # The run acts for whoever started it: the proposal is theirs (separation of duties counts it).
    caller = (
        Caller(principal_id=ctx.principal_id, tenant_id=ctx.tenant_id, name="", role=ctx.role)
        if ctx.principal_id is not None
        else None
    )
    item, version = propose(
        ctx.session,
        tenant_id=ctx.tenant_id,
        proposal=MemoryProposal(
            text=args.text, kind=args.kind, subject_key=args.subject_key, evidence=evidence
        ),
        proposed_by=str(ctx.principal_id) if ctx.principal_id else f"run:{ctx.run.run_id}",
        kicker=ctx.run.executor.kicker,
        extractor="agent",
        caller=caller,
    )
    return ToolOutput(
        content=f"Proposed memory {item.id} (version {version.number}); it waits for a reviewer.",
        data={"item_id": str(item.id), "version_id": str(version.id)},
    )


class NoArgs(BaseModel):
    pass


@tool(
    summary="List the document collections and how many documents each holds.",
    tags=("content", "collections"),
)
def list_collections(ctx: ToolContext, args: NoArgs) -> ToolOutput:
    collections = content_service.list_collections(ctx.session)
    if not collections:
        return ToolOutput(content="There are no documents yet.")
    return ToolOutput(content="\n".join(f"{name}: {count} documents" for name, count in collections))


class AskArgs(BaseModel):
    question: str = Field(min_length=3, max_length=2000, description="What to ask a person.")


@tool(summary="Ask a person a question and wait for the answer.", tags=("human", "ask", "clarify"))
def ask_human(ctx: ToolContext, args: AskArgs) -> ToolOutput:
    """The run waits (holding no worker) until someone answers in the console or through the API."""
    raise RuntimeError("ask_human is answered by the loop, not run as a step")


# What one read_result gives back: less than the conversation cuts a result at, so that a piece
# is never cut again (which would hand out a handle to the piece instead of the result).
READ_WINDOW = RESULT_LIMIT_CHARS - 200


class ReadResultArgs(BaseModel):
    handle: str = Field(description="The handle a truncated tool result gave, like 'r12'.")
    offset: int = Field(default=0, ge=0, description="Where to start reading, in characters.")
    length: int = Field(
        default=4000, ge=100, le=20000, description=f"At most {READ_WINDOW} characters come back at a time."
    )


@tool(summary="Read more of a tool result that was cut short.", tags=("results", "read", "truncated"))
def read_result(ctx: ToolContext, args: ReadResultArgs) -> ToolOutput:
    """Long tool results are truncated in the conversation; their full text is kept with the run."""
    if not args.handle.startswith("r") or not args.handle[1:].isdigit():
        return ToolOutput(
            content=f"{args.handle!r} is not a result handle (they look like 'r12').", is_error=True
        )
    result = step_result(ctx.session, run_id=ctx.run.run_id, seq=int(args.handle[1:]))
    if not isinstance(result, dict) or "content" not in result:
        return ToolOutput(content=f"No result with handle {args.handle}.", is_error=True)
    full = as_numbered(ctx, result)
    piece = full[args.offset : args.offset + min(args.length, READ_WINDOW)]
    rest = len(full) - args.offset - len(piece)
    note = (
        f"\n[{rest} more characters: read_result(handle='{args.handle}', offset={args.offset + len(piece)})]"
    )
    return ToolOutput(content=piece + (note if rest > 0 else "\n[end of result]"))


def as_numbered(ctx: ToolContext, result: dict[str, Any]) -> str:
    """A recorded result's text as the conversation showed it: with its sources under the run's
    numbers (the step recorded them unnumbered), so that the offsets of a cut note hold."""
    output = ToolOutput.model_validate({k: v for k, v in result.items() if k in ToolOutput.model_fields})
    by_key = {source.key: source for source in ctx.sources}
    numbered = [by_key[c.key] for c in output.citations if c.key in by_key]
    if len(numbered) < len(output.citations):
        return output.content  # not a result of an earlier turn of this run
    return numbered_text(output.content, numbered)


# The built-in tools, in the order the catalog lists them.
TOOLS = (
    search_content,
    read_section,
    compare_versions,
    recall_memory,
    propose_memory,
    list_collections,
    ask_human,
    read_result,
)
