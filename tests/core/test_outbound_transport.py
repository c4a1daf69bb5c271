"""The HTTP transport that applies the outbound policy where the connection is made: to the
address it connects to, on every redirect hop, after any DNS answer, with TLS still for the name."""

from __future__ import annotations

import datetime
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from quire.core.errors import OutboundRefused
from quire.core.outbound import OutboundPolicy
from quire.core.outbound_transport import OutboundTransport
from tests.local_servers import fake_dns, free_port, http_server

LOCAL = OutboundPolicy.from_setting("127.0.0.1/32")
PAGE = (200, {"Content-Type": "text/plain"}, b"hello")


def get(url: str, policy: OutboundPolicy, *, verify: ssl.SSLContext | bool = True) -> httpx2.Response:
    async def fetch() -> httpx2.Response:
        transport = OutboundTransport(policy, verify=verify)
        async with httpx2.AsyncClient(transport=transport, follow_redirects=True, timeout=5) as client:
            return await client.get(url)

    return anyio.run(fetch)


def test_a_loopback_server_is_refused_unless_allowed() -> None:
    with http_server(PAGE) as (url, hits):
        with pytest.raises(OutboundRefused, match=r"127\.0\.0\.1 is a loopback address"):
            get(url, OutboundPolicy())
        assert len(hits) == 0
        assert get(url, LOCAL).text == "hello"
        assert len(hits) == 1


def test_every_redirect_hop_is_vetted(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"inside.quire.test": ["10.1.2.3"]})
    with http_server(PAGE, host="127.0.0.2") as (internal, internal_hits):
        port = internal.rsplit(":", 1)[1]
        for location in (internal, "http://inside.quire.test/", f"http://[::ffff:127.0.0.2]:{port}/"):
            redirect = (302, {"Location": location}, b"")
            with http_server(redirect) as (allowed, allowed_hits):
                with pytest.raises(OutboundRefused):
                    get(allowed, LOCAL)
                assert len(allowed_hits) == 1, location
        assert len(internal_hits) == 0


def test_the_address_connected_to_is_vetted_not_an_earlier_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    with http_server(PAGE) as (url, hits):
        port = url.rsplit(":", 1)[1]
        fake_dns(monkeypatch, {"flip.quire.test": ["127.0.0.1", "10.9.8.7"]})  # DNS rebinding
        LOCAL.check_url(f"http://flip.quire.test:{port}/")  # the first answer passes
        with pytest.raises(OutboundRefused, match=r"resolves to 10\.9\.8\.7, a private address"):
            get(f"http://flip.quire.test:{port}/", LOCAL)
    assert len(hits) == 0


def test_a_name_that_does_not_resolve_is_a_connect_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"nowhere.quire.test": [""]})
    with pytest.raises(httpx2.ConnectError):
        get("http://nowhere.quire.test/", OutboundPolicy())


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, ssl.SSLContext, list[str | None]]]:
    """An HTTPS server on 127.0.0.1 with a certificate for quire.test; records the SNI it gets."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "quire.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("quire.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    names: list[str | None] = []
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    server_context.sni_callback = lambda sock, server_name, context: names.append(server_name)  # type: ignore[assignment,func-returns-value]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client_context = ssl.create_default_context(cafile=str(cert_file))
    try:
        yield port, client_context, names
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_tls_is_for_the_host_name_while_the_connection_goes_to_the_vetted_address(
    tls_server: tuple[int, ssl.SSLContext, list[str | None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, trusted, names = tls_server
    fake_dns(monkeypatch, {"quire.test": ["127.0.0.1"]})
    assert get(f"https://quire.test:{port}/", LOCAL, verify=trusted).text == "ok"
    assert names == ["quire.test"]
