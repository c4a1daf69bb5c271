"""The API's operations as requests, built once for both clients (sync and async)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from quire.client import models

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    model: type[T] | None  # None: no body worth reading (204)
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    files: dict[str, tuple[str, bytes]] | None = None
    data: dict[str, Any] | None = None


def upload(
    data: bytes,
    *,
    filename: str,
    collection: str = "default",
    source_key: str | None = None,
    tags: tuple[str, ...] = (),
) -> Call[models.Upload]:
    form: dict[str, Any] = {"collection": collection}
    if source_key is not None:
        form["source_key"] = source_key
    if tags:
        form["tags"] = list(tags)
    return Call("POST", "/v1/documents", models.Upload, files={"file": (filename, data)}, data=form)


def document(document_id: str) -> Call[models.Document]:
    return Call("GET", f"/v1/documents/{document_id}", models.Document)


def retry_version(document_id: str, number: int) -> Call[models.Version]:
    return Call("POST", f"/v1/documents/{document_id}/versions/{number}/retry", models.Version)


def search(
    query: str, *, k: int = 10, collections: tuple[str, ...] = (), mode: str = "hybrid"
) -> Call[models.SearchResults]:
    params = {"q": query, "k": k, "mode": mode, "collection": list(collections)}
    return Call("GET", "/v1/search", models.SearchResults, params=params)


def start_run(
    question: str, *, collections: tuple[str, ...] = (), route: str | None = None, stream: bool = False
) -> Call[models.StartedRun]:
    body = {"question": question, "collections": list(collections), "route": route, "stream": stream}
    return Call("POST", "/v1/agent/runs", models.StartedRun, json=body)


def agent_run(run_id: str) -> Call[models.AgentRun]:
    return Call("GET", f"/v1/agent/runs/{run_id}", models.AgentRun)


def revoke_key(key_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/keys/{key_id}", None)


def create_key(*, role: str, name: str) -> Call[models.CreatedKey]:
    return Call("POST", "/v1/keys", models.CreatedKey, json={"role": role, "name": name})


def signal_run(run_id: str, name: str, *, payload: Any = None, dedup_key: str | None = None) -> Call[Any]:
    body = {"payload": payload, "key": dedup_key}
    return Call("POST", f"/v1/runs/{run_id}/signals/{name}", dict, json=body)


def cancel_run(run_id: str, *, reason: str | None = None) -> Call[models.Run]:
    return Call("POST", f"/v1/runs/{run_id}/cancel", models.Run, json={"reason": reason})


def retry_run(run_id: str, *, deadline_seconds: float | None = None) -> Call[models.Run]:
    return Call("POST", f"/v1/runs/{run_id}/retry", models.Run, json={"deadline_seconds": deadline_seconds})


def run(run_id: str) -> Call[models.Run]:
    return Call("GET", f"/v1/runs/{run_id}", models.Run)


# Lists: the path, their filters, and the model of one row; `pages` walks them by cursor.


@dataclass(frozen=True)
class ListCall(Generic[T]):
    path: str
    model: type[T]
    params: dict[str, Any] = field(default_factory=dict)

    def page(self, cursor: str | None, limit: int) -> Call[dict[str, Any]]:
        params = {k: v for k, v in self.params.items() if v is not None}
        params["limit"] = limit
        if cursor:
            params["cursor"] = cursor
        return Call("GET", self.path, dict, params=params)


def agent_runs(*, status: str | None = None) -> ListCall[models.AgentRunSummary]:
    return ListCall("/v1/agent/runs", models.AgentRunSummary, {"status": status})


def runs(*, status: str | None = None, program: str | None = None) -> ListCall[models.Run]:
    return ListCall("/v1/runs", models.Run, {"status": status, "program": program})


def documents(*, collection: str | None = None, status: str | None = None) -> ListCall[models.Document]:
    return ListCall("/v1/documents", models.Document, {"collection": collection, "status": status})


def memories(*, state: str | None = None, q: str | None = None) -> ListCall[models.Memory]:
    return ListCall("/v1/memories", models.Memory, {"state": state, "q": q})


def keys() -> ListCall[models.ApiKey]:
    return ListCall("/v1/keys", models.ApiKey)


def read_page(body: Any, model: type[T]) -> tuple[list[T], int | None, str | None]:
    """The rows of one page, the count on every page, and the cursor of the next (None on the last)."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ValueError("not a list envelope ({data, count, next_cursor})")
    rows = [model.model_validate(row) for row in body["data"]]  # type: ignore[attr-defined]
    return rows, body.get("count"), body.get("next_cursor")
