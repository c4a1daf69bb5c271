"""`Quire`: the blocking client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

from quire.client import calls, models
from quire.client.config import events_path, resolve
from quire.client.errors import QuireError, unreachable
from quire.client.retries import RetryPolicy
from quire.client.sse import parse

T = TypeVar("T")


class Quire:
    """Quire's API, configured by base URL and API key (default: QUIRE_URL, QUIRE_API_KEY).

    Errors raise `QuireError` with the API's code, message and details; 429 and 503 are sent
    again after their Retry-After, up to `retries.attempts` requests."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        retries: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url, key = resolve(base_url, api_key)
        self.retries = retries or RetryPolicy()
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {key}", "User-Agent": "quire-client"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Quire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Documents and search

    def upload(
        self,
        path: Path | str,
        *,
        collection: str = "default",
        source_key: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> models.Upload:
        path = Path(path)
        call = calls.upload(
            path.read_bytes(), filename=path.name, collection=collection, source_key=source_key, tags=tags
        )
        return self.send(call)

    def document(self, document_id: str) -> models.Document:
        return self.send(calls.document(document_id))

    def documents(
        self, *, collection: str | None = None, status: str | None = None, limit: int = 100
    ) -> Pages[models.Document]:
        """Documents, newest first; `status` keeps those whose latest version has it (`failed`)."""
        return self.iterate(calls.documents(collection=collection, status=status), limit=limit)

    def retry_version(self, document_id: str, number: int) -> models.Version:
        """Ingest a failed version again from its stored bytes (409 when it did not fail)."""
        return self.send(calls.retry_version(document_id, number))

    def search(
        self, query: str, *, k: int = 10, collections: tuple[str, ...] = (), mode: str = "hybrid"
    ) -> models.SearchResults:
        return self.send(calls.search(query, k=k, collections=collections, mode=mode))

    # Agent runs

    def start_run(
        self,
        question: str,
        *,
        collections: tuple[str, ...] = (),
        route: str | None = None,
        stream: bool = False,
    ) -> models.StartedRun:
        return self.send(calls.start_run(question, collections=collections, route=route, stream=stream))

    def agent_run(self, run_id: str) -> models.AgentRun:
        return self.send(calls.agent_run(run_id))

    def agent_runs(self, *, status: str | None = None, limit: int = 50) -> Pages[models.AgentRunSummary]:
        return self.iterate(calls.agent_runs(status=status), limit=limit)

    def events(
        self, run_id: str, *, last_event_id: str | None = None, reconnects: int = 5
    ) -> Iterator[models.RunEvent]:
        """The run's events until it ends. A dropped stream is opened again with Last-Event-ID,
        so no event is lost or repeated; `reconnects` bounds how often in a row."""
        left = reconnects
        while True:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            pause = 0.2
            try:
                with self._http.stream(
                    "GET", events_path(run_id), headers=headers, timeout=httpx.Timeout(60.0, read=None)
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        pause = self._throttled(response, attempt=reconnects - left + 1)
                    else:
                        for sse in parse(response.iter_lines()):
                            if sse.event == "end":
                                return
                            if sse.id is not None:
                                last_event_id = sse.id
                            left = reconnects
                            yield models.RunEvent.model_validate_json(sse.data)
            except httpx.TransportError as error:
                if left <= 0:
                    raise unreachable(self.base_url, error) from error
            else:
                if left <= 0:  # the server keeps closing the stream before the run ends
                    raise QuireError(f"the event stream of run {run_id} keeps closing", code="stream_closed")
            left -= 1
            time.sleep(pause)

    # Durable runs of any program

    def runs(
        self, *, status: str | None = None, program: str | None = None, limit: int = 50
    ) -> Pages[models.Run]:
        return self.iterate(calls.runs(status=status, program=program), limit=limit)

    def run(self, run_id: str) -> models.Run:
        return self.send(calls.run(run_id))

    def retry_run(self, run_id: str, *, deadline_seconds: float | None = None) -> models.Run:
        return self.send(calls.retry_run(run_id, deadline_seconds=deadline_seconds))

    def signal_run(
        self, run_id: str, name: str, *, payload: Any = None, dedup_key: str | None = None
    ) -> bool:
        sent = self.send(calls.signal_run(run_id, name, payload=payload, dedup_key=dedup_key))
        return bool(sent.get("delivered"))

    def cancel_run(self, run_id: str, *, reason: str | None = None) -> models.Run:
        return self.send(calls.cancel_run(run_id, reason=reason))

    # Memories and keys

    def memories(
        self, *, state: str | None = None, q: str | None = None, limit: int = 100
    ) -> Pages[models.Memory]:
        return self.iterate(calls.memories(state=state, q=q), limit=limit)

    def keys(self) -> Pages[models.ApiKey]:
        return self.iterate(calls.keys(), limit=100)

    def create_key(self, *, role: str, name: str) -> models.CreatedKey:
        return self.send(calls.create_key(role=role, name=name))

    def revoke_key(self, key_id: str) -> None:
        self.send(calls.revoke_key(key_id))

    # The machinery

    def iterate(self, listing: calls.ListCall[T], *, limit: int) -> Pages[T]:
        """Every row of a list, a page of `limit` at a time, following `next_cursor`."""
        return Pages(self, listing, limit)

    def send(self, call: calls.Call[T]) -> T:
        response = self.request(call)
        if call.model is None or response.status_code == 204:
            return None  # type: ignore[return-value]
        body = response.json()
        return body if call.model is dict else call.model.model_validate(body)  # type: ignore[attr-defined, no-any-return]

    def _throttled(self, response: httpx.Response, *, attempt: int) -> float:
        """How long to wait before asking again, or the response's error when not to ask again."""
        wait = self.retries.delay(response, attempt)
        if wait is None:
            raise QuireError.from_response(response)
        return wait

    def request(self, call: calls.Call[Any]) -> httpx.Response:
        attempt = 1
        while True:
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    params=call.params or None,
                    json=call.json,
                    files=call.files,
                    data=call.data,
                )
            except httpx.TransportError as error:
                raise unreachable(self.base_url, error) from error
            if response.status_code < 400:
                return response
            wait = self.retries.delay(response, attempt)
            if wait is None:
                raise QuireError.from_response(response)
            time.sleep(wait)
            attempt += 1


class Pages(Iterator[T]):
    """The rows of a list, fetched a page at a time as they are read; `count` (how many rows the
    list holds, on every page) is known once the first page is."""

    def __init__(self, client: Quire, listing: calls.ListCall[T], limit: int) -> None:
        self.client, self.listing, self.limit = client, listing, limit
        self.count: int | None = None
        self._rows: list[T] = []
        self._cursor: str | None = None
        self._started = False

    def __iter__(self) -> Pages[T]:
        return self

    def __next__(self) -> T:
        while not self._rows:
            if self._started and not self._cursor:
                raise StopIteration
            self._fetch()
        return self._rows.pop(0)

    def first(self, n: int) -> list[T]:
        """Up to `n` rows, fetching no page beyond the one that holds the n-th."""
        taken: list[T] = []
        for row in self:
            taken.append(row)
            if len(taken) >= n:
                break
        return taken

    def _fetch(self) -> None:
        body = self.client.send(self.listing.page(self._cursor, self.limit))
        self._rows, count, self._cursor = calls.read_page(body, self.listing.model)
        self.count = count if count is not None else self.count
        self._started = True
