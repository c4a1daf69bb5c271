"""Servers on this machine for outbound tests: a streamable-HTTP MCP server, a port that speaks
something else, a plain web page, a redirect. Each runs on a thread and records what reached it."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import uvicorn


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (right now)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def fake_dns(monkeypatch: pytest.MonkeyPatch, names: dict[str, list[str]]) -> None:
    """Make each of `names` resolve to its answers in turn (the last one from then on); an answer is
    comma-separated addresses, or empty for a name that does not resolve. Other names resolve as
    before. Nothing leaves the machine: the addresses are literals."""
    real = socket.getaddrinfo
    calls = dict.fromkeys(names, 0)

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in names:
            return real(host, port, *args, **kwargs)
        answers = names[name]
        answer = answers[min(calls[name], len(answers) - 1)]
        calls[name] += 1
        if not answer:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [info for address in answer.split(",") for info in real(address, port, *args, **kwargs)]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@dataclass
class Hits:
    """What reached a server: one entry per request (its headers) or connection."""

    seen: list[dict[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.seen)


@contextmanager
def mcp_http_server(host: str = "127.0.0.1") -> Iterator[tuple[str, Hits]]:
    """An MCP server over streamable HTTP with one tool (`echo`); yields its URL and its hits."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings

    server: MCPServer[Any] = MCPServer("local-tools")

    @server.tool(description="Say the text back.")
    def echo(text: str) -> str:
        return text

    app = server.streamable_http_app(
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )
    hits = Hits()

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            hits.seen.append({**seen, ":query": scope["query_string"].decode()})
        await app(scope, receive, send)

    port = free_port(host)
    config = uvicorn.Config(recording, host=host, port=port, log_config=None, lifespan="on")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.started, "the local MCP server did not start"
    try:
        yield f"http://{host}:{port}/mcp", hits
    finally:
        running.should_exit = True
        thread.join(10)


@contextmanager
def http_server(
    answer: tuple[int, dict[str, str], bytes], host: str = "127.0.0.1"
) -> Iterator[tuple[str, Hits]]:
    """A web server giving every request the same (status, headers, body); yields its base URL."""
    hits = Hits()
    status, headers, body = answer

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            hits.seen.append({k.lower(): v for k, v in self.headers.items()})
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with _serving(ThreadingHTTPServer((host, 0), Handler)) as port:
        yield f"http://{host}:{port}", hits


@contextmanager
def banner_server(host: str = "127.0.0.1") -> Iterator[tuple[str, Hits]]:
    """A port that speaks another protocol: it sends an SSH banner and hangs up."""
    hits = Hits()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            hits.seen.append({})
            self.request.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    with _serving(socketserver.ThreadingTCPServer((host, 0), Handler)) as port:
        yield f"http://{host}:{port}", hits


@contextmanager
def _serving(server: socketserver.BaseServer) -> Iterator[int]:
    server.daemon_threads = True  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]  # type: ignore[misc]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
