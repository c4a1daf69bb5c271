"""What the API answers, as the client reads it: small models of the fields clients use.

The server's own models live beside its tables (sqlmodel, the database), too heavy for a client
to import; these keep every other field the API sends (`extra="allow"`), so a field the server
adds reaches the caller before the client names it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="allow")


T = TypeVar("T", bound=ApiModel)


class Page(ApiModel, Generic[T]):
    """One page of a list: `{"data": [...], "count": int, "next_cursor": str | null}`."""

    data: list[T]
    count: int | None = None
    next_cursor: str | None = None


class Upload(ApiModel):
    document_id: str
    version_id: str
    version_number: int
    run_id: str | None = None
    created: bool
    retried: bool = False
    status: str
    message: str = ""


class Version(ApiModel):
    id: str
    number: int
    filename: str = ""
    status: str
    status_reason: str | None = None
    error_code: str | None = None
    warnings: list[Any] = Field(default_factory=list)


class Document(ApiModel):
    id: str
    collection: str
    source_key: str
    title: str
    latest_version_id: str | None = None
    version_count: int = 0  # the number of its latest version
    versions: list[Version] = Field(default_factory=list)  # in the detail only


class SearchCitation(ApiModel):
    """Where a search hit comes from, under the names an answer's `Citation` uses."""

    document_id: str
    title: str
    collection: str = ""
    version: int
    version_id: str = ""
    element_id: str | None = None
    element_ids: list[str] = Field(default_factory=list)
    page: int | None = None
    pages: list[int] = Field(default_factory=list)
    section: list[str] = Field(default_factory=list)
    snippet: str = ""


class SearchHit(ApiModel):
    score: float
    text: str
    citation: SearchCitation


class SearchResults(ApiModel):
    query: str
    hits: list[SearchHit]
    took_ms: float


class Citation(ApiModel):
    """A source an answer cites, under the [n] its text uses: a passage of a document version, or
    an approved memory (the API's `AnswerCitation`; fields it adds later are kept as extras)."""

    n: int
    kind: str
    title: str = ""
    quote: str = ""
    document_id: str | None = None
    version: int | None = None
    element_id: str | None = None
    page: int | None = None
    section: list[str] = []
    memory_id: str | None = None

    def label(self) -> str:
        if self.kind == "memory":
            return f"memory: {self.title}"
        where = [f"v{self.version}"] if self.version is not None else []
        where += [" > ".join(self.section)] if self.section else []
        where += [f"p. {self.page}"] if self.page is not None else []
        return f"{self.title} ({', '.join(where)})" if where else self.title


class Usage(ApiModel):
    input_tokens: int = 0
    output_tokens: int = 0


class AgentRun(ApiModel):
    id: str
    status: str
    question: str
    answer: str | None = None
    citations: list[Citation] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    model_calls: int = 0
    stop_reason: str | None = None
    error: str | None = None
    error_code: str | None = None


class AgentRunSummary(ApiModel):
    id: str
    status: str
    question: str
    answer_excerpt: str | None = None
    error: str | None = None
    error_code: str | None = None
    created_at: datetime


class StartedRun(ApiModel):
    """A run just started: its id, and whether this request created it (an idempotency key
    repeated answers the first run, `created: false`)."""

    id: str
    created: bool = True


class Run(ApiModel):
    """A durable run of any program (`/v1/runs`): its summary, or with `steps`, `state` and
    `waiting_for` its detail."""

    id: str
    program: str
    program_version: int = 1
    status: str
    error: str | None = None
    error_code: str | None = None
    created_at: datetime


class RunEvent(ApiModel):
    """One event of a run, as its server-sent event's data carries it."""

    id: int
    type: str
    data: dict[str, Any] | None = None
    created_at: datetime | None = None


class MemoryVersion(ApiModel):
    id: str
    number: int
    text: str
    state: str


class Memory(ApiModel):
    id: str
    kind: str
    scope: str
    subject_key: str | None = None
    latest: MemoryVersion | None = None


class ApiKey(ApiModel):
    id: str
    prefix: str
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None = None


class CreatedKey(ApiModel):
    principal_id: str
    role: str
    key: str
