"""`AsyncQuire`: the asyncio client, the same operations as `Quire`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

from quire.client import calls, models
from quire.client.config import events_path, resolve
from quire.client.errors import QuireError, unreachable
from quire.client.retries import RetryPolicy
from quire.client.sse import SseParser

T = TypeVar("T")


class AsyncQuire:
    """Quire's API for asyncio code; see `Quire` for what each operation does."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        retries: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url, key = resolve(base_url, api_key)
        self.retries = retries or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {key}", "User-Agent": "quire-client"},
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncQuire:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def upload(
        self,
        path: Path | str,
        *,
        collection: str = "default",
        source_key: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> models.Upload:
        path = Path(path)
        data = await asyncio.to_thread(path.read_bytes)
        call = calls.upload(data, filename=path.name, collection=collection, source_key=source_key, tags=tags)
        return await self.send(call)

    async def document(self, document_id: str) -> models.Document:
        return await self.send(calls.document(document_id))

    def documents(
        self, *, collection: str | None = None, status: str | None = None, limit: int = 100
    ) -> AsyncIterator[models.Document]:
        """Documents, newest first; `status` keeps those whose latest version has it (`failed`)."""
        return self.iterate(calls.documents(collection=collection, status=status), limit=limit)

    async def retry_version(self, document_id: str, number: int) -> models.Version:
        """Ingest a failed version again from its stored bytes (409 when it did not fail)."""
        return await self.send(calls.retry_version(document_id, number))

    async def search(
        self, query: str, *, k: int = 10, collections: tuple[str, ...] = (), mode: str = "hybrid"
    ) -> models.SearchResults:
        return await self.send(calls.search(query, k=k, collections=collections, mode=mode))

    async def start_run(
        self,
        question: str,
        *,
        collections: tuple[str, ...] = (),
        route: str | None = None,
        stream: bool = False,
    ) -> models.StartedRun:
        return await self.send(calls.start_run(question, collections=collections, route=route, stream=stream))

    async def agent_run(self, run_id: str) -> models.AgentRun:
        return await self.send(calls.agent_run(run_id))

    def agent_runs(
        self, *, status: str | None = None, limit: int = 50
    ) -> AsyncIterator[models.AgentRunSummary]:
        return self.iterate(calls.agent_runs(status=status), limit=limit)

    async def events(
        self, run_id: str, *, last_event_id: str | None = None, reconnects: int = 5
    ) -> AsyncIterator[models.RunEvent]:
        """The run's events until it ends, reconnecting with Last-Event-ID (see `Quire.events`)."""
        left = reconnects
        while True:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            pause = 0.2
            try:
                async with self._http.stream(
                    "GET", events_path(run_id), headers=headers, timeout=httpx.Timeout(60.0, read=None)
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        wait = self.retries.delay(response, reconnects - left + 1)
                        if wait is None:
                            raise QuireError.from_response(response)
                        pause = wait
                    else:
                        parser = SseParser()
                        async for line in response.aiter_lines():
                            sse = parser.feed(line)
                            if sse is None:
                                continue
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
                if left <= 0:
                    raise QuireError(f"the event stream of run {run_id} keeps closing", code="stream_closed")
            left -= 1
            await asyncio.sleep(pause)

    async def signal_run(
        self, run_id: str, name: str, *, payload: Any = None, dedup_key: str | None = None
    ) -> bool:
        sent = await self.send(calls.signal_run(run_id, name, payload=payload, dedup_key=dedup_key))
        return bool(sent.get("delivered"))

    async def cancel_run(self, run_id: str, *, reason: str | None = None) -> models.Run:
        return await self.send(calls.cancel_run(run_id, reason=reason))

    def runs(
        self, *, status: str | None = None, program: str | None = None, limit: int = 50
    ) -> AsyncIterator[models.Run]:
        return self.iterate(calls.runs(status=status, program=program), limit=limit)

    async def run(self, run_id: str) -> models.Run:
        return await self.send(calls.run(run_id))

    async def retry_run(self, run_id: str, *, deadline_seconds: float | None = None) -> models.Run:
        return await self.send(calls.retry_run(run_id, deadline_seconds=deadline_seconds))

    def memories(
        self, *, state: str | None = None, q: str | None = None, limit: int = 100
    ) -> AsyncIterator[models.Memory]:
        return self.iterate(calls.memories(state=state, q=q), limit=limit)

    def keys(self) -> AsyncIterator[models.ApiKey]:
        return self.iterate(calls.keys(), limit=100)

    async def create_key(self, *, role: str, name: str) -> models.CreatedKey:
        return await self.send(calls.create_key(role=role, name=name))

    async def revoke_key(self, key_id: str) -> None:
        await self.send(calls.revoke_key(key_id))

    async def iterate(self, listing: calls.ListCall[T], *, limit: int) -> AsyncIterator[T]:
        cursor: str | None = None
        while True:
            rows, _, cursor = calls.read_page(await self.send(listing.page(cursor, limit)), listing.model)
            for row in rows:
                yield row
            if not cursor:
                return

    async def send(self, call: calls.Call[T]) -> T:
        response = await self.request(call)
        if call.model is None or response.status_code == 204:
            return None  # type: ignore[return-value]
        body = response.json()
        return body if call.model is dict else call.model.model_validate(body)  # type: ignore[attr-defined, no-any-return]

    async def request(self, call: calls.Call[Any]) -> httpx.Response:
        attempt = 1
        while True:
            try:
                response = await self._http.request(
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
            await asyncio.sleep(wait)
            attempt += 1
