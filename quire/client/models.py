"""What the API answers, as the client reads it: small models of the fields clients use.

The server's own models live beside its tables (sqlmodel, the database), too heavy for a client
to import; these keep every other field the API sends (`extra="allow"`), so a field the server
adds reaches the caller before the client names it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator


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
    versions: list[Version] = Field(default_factory=list)  # in the detail only


class SearchCitation(ApiModel):
    document_id: str
    document_title: str
    collection: str = ""
    version_id: str = ""
    version_number: int
    element_ids: list[str] = Field(default_factory=list)
    pages: list[int] = Field(default_factory=list)
    section_path: list[str] = Field(default_factory=list)
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
    """A source an answer cites, kept as the API sent it. The accessors read both shapes the API
    has had (`n` or `ref`, `version` or `version_number`, `section` or `section_path`, `page` or
    `pages`), so a server from before issue 21 reads the same."""

    kind: str = "content"
    title: str = ""

    def _either(self, *names: str) -> Any:
        extra = self.model_extra or {}
        return next((extra[name] for name in names if extra.get(name) not in (None, [])), None)

    @property
    def number(self) -> int | None:
        value = self._either("n", "ref")
        return int(value) if value is not None else None

    @property
    def version(self) -> int | None:
        value = self._either("version", "version_number")
        return int(value) if value is not None else None

    @property
    def section(self) -> str | None:
        value = self._either("section", "section_path")
        return " > ".join(value) if isinstance(value, list) else value

    @property
    def page(self) -> int | None:
        value = self._either("page", "pages")
        value = value[0] if isinstance(value, list) else value
        return int(value) if value is not None else None

    def label(self) -> str:
        if self.kind == "memory":
            return f"memory: {self.title}"
        where = [f"v{self.version}"] if self.version is not None else []
        where += [self.section] if self.section else []
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
    """A run just started. The API answers `{id, ...}`; before issue 21 it answered `{run_id, ...}`:
    this is the one place that reads either (drop `run_id` once every server says `id`)."""

    id: str
    created: bool = True

    @model_validator(mode="before")
    @classmethod
    def _id(cls, value: Any) -> Any:
        if isinstance(value, dict) and "id" not in value and "run_id" in value:
            return {**value, "id": value["run_id"]}
        return value


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
