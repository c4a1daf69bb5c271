"""A scripted local HTTP server: tests queue replies and read back the requests it received."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    """One scripted answer: a whole body, or SSE events written (and flushed) one by one."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    events: list[str] | None = None
    delay: float = 0.0


def json_reply(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        status=status,
        headers={"content-type": "application/json", **(headers or {})},
        body=json.dumps(body).encode(),
    )


def sse_reply(events: list[str], *, headers: dict[str, str] | None = None) -> Reply:
    """A text/event-stream reply; each item is one complete event, blank-line terminated."""
    return Reply(headers={"content-type": "text/event-stream", **(headers or {})}, events=events)


def data_event(payload: Any) -> str:
    return f"data: {json.dumps(payload)}\n\n"


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeServer:
    """An HTTP server on 127.0.0.1 answering each request with the next queued Reply.

    `route` is a regular expression the request path must match in full; other paths get a
    404, and a request with nothing queued gets a 599, so a test never passes by accident.
    """

    route: str = r".*"

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._http.daemon_threads = True
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def reply(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    @property
    def last(self) -> Received:
        return self.received[-1]

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _next(self, request: Received) -> Reply:
        with self._lock:
            self.received.append(request)
            if not re.fullmatch(self.route, request.path):
                return json_reply({"error": f"fake: no route {request.path}"}, status=404)
            if not self.replies:
                return json_reply({"error": "fake: no reply queued"}, status=599)
            return self.replies.popleft()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._answer()

            def do_GET(self) -> None:
                self._answer()

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                parts = urlsplit(self.path)
                request = Received(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={key.lower(): value for key, value in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                reply = server._next(request)
                if reply.delay:
                    time.sleep(reply.delay)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._write(reply)  # unless the client gave up (a timeout test)

            def _write(self, reply: Reply) -> None:
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                if reply.events is None:
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                    return
                self.send_header("cache-control", "no-cache")
                self.end_headers()  # HTTP/1.0: the body ends when the connection closes
                for event in reply.events:
                    self.wfile.write(event.encode())
                    self.wfile.flush()

        return Handler
