"""Hostile uploads through the real API and worker: each is refused or fails with a clear reason,
the worker stays up, and the ordinary documents of the same batch are indexed and searchable."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from quire.content import ingestion, service, uploads
from quire.content.environment import ContentEnvironment
from quire.content.parsing import ParsedDocument, Parser, ParserCrashed
from quire.core.blobs import FileBlobStore
from quire.runtime.retry import RetryPolicy
from tests.content import fixtures
from tests.e2e.processes import quire_up, wait_for
from tests.harness import Harness, make_harness

pytestmark = pytest.mark.e2e

FINAL = {"indexed", "empty", "unsupported", "failed"}

HANDBOOK = """# Employee handbook

## Holidays

Every employee gets 27 days of paid holiday a year.
"""

HTML = """<html><head><title>Canteen</title></head><body>
<h1>Canteen</h1><p>The canteen serves lentil soup every Thursday.</p>
</body></html>"""


def billion_laughs() -> bytes:
    """XML whose entities would expand to 10**9 "lol"s (about 3 GB)."""
    lines = ['<?xml version="1.0"?>', "<!DOCTYPE lolz [", ' <!ENTITY lol "lol">']
    for level in range(1, 10):
        previous = "lol" if level == 1 else f"lol{level - 1}"
        lines.append(f' <!ENTITY lol{level} "{f"&{previous};" * 10}">')
    lines += ["]>", "<lolz><title>Laughs</title><p>&lol9;</p></lolz>"]
    return "\n".join(lines).encode()


def external_entity(secret: Path) -> bytes:
    """XML that asks the parser to read a local file into the document (XXE)."""
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE note [<!ENTITY leak SYSTEM "file://{secret}">]>\n'
        "<note><p>Quarterly note: &leak;</p></note>"
    ).encode()


def stream(data: bytes, dictionary: bytes = b"") -> bytes:
    return b"<< %s /Length %d >>\nstream\n%s\nendstream" % (dictionary, len(data), data)


def raw_pdf(objects: list[bytes]) -> bytes:
    """A PDF of `objects`, numbered from 1, the first its catalog.

    Written by hand, since PDF libraries will not write the loops these tests need.
    """
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % offset for offset in offsets)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def pdf_with_a_reference_loop() -> bytes:
    """The catalog's page tree is object 2, and object 2 is a reference to object 2."""
    return raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"2 0 R"])


def pdf_with_a_tangled_page_tree() -> bytes:
    """A page tree that lists itself among its kids, on a page whose form draws itself."""
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> /XObject << /X 6 0 R >> >> >>",
            stream(b"BT /F1 12 Tf 72 700 Td (Tangled but readable) Tj ET /X Do"),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            stream(
                b"/X Do",
                b"/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /XObject << /X 6 0 R >> >>",
            ),
        ]
    )


def csv_with_a_long_line(megabytes: int) -> bytes:
    return b"name,notes\nalpha," + b"x" * (megabytes << 20) + b"\nbeta,short\n"


@dataclass
class Uploaded:
    name: str
    response: httpx.Response

    @property
    def document_id(self) -> str:
        return str(self.response.json()["document_id"])


def upload(client: httpx.Client, name: str, data: bytes | io.BufferedReader, **form: str) -> Uploaded:
    response = client.post("/v1/documents", files={"file": (name, data)}, data=form)
    return Uploaded(name, response)


def version_of(client: httpx.Client, uploaded: Uploaded) -> dict[str, Any]:
    document = client.get(f"/v1/documents/{uploaded.document_id}").json()
    return dict(document["versions"][-1]) | {"source_key": document["source_key"]}


def elements_of(client: httpx.Client, uploaded: Uploaded) -> list[str]:
    version = client.get(f"/v1/documents/{uploaded.document_id}/versions/1").json()
    return [element["text"] for element in version["elements"]]


def test_hostile_uploads_fail_clearly_while_the_rest_of_the_batch_ingests(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:the-secret-marker")
    sparse = tmp_path / "huge.txt"
    with sparse.open("wb") as handle:
        handle.truncate(2**30)  # 1 GB that takes no disk
    escape = f"escaped-{uuid.uuid4().hex[:8]}"
    data_dir = tmp_path / "data"
    started = time.monotonic()
    with quire_up(
        data_dir,
        QUIRE_MAX_UPLOAD_MB="64",
        QUIRE_PARSE_MEMORY_MB="256",
        QUIRE_PARSE_TIMEOUT_SECONDS="20",
        QUIRE_WORKER_PROCESSES="1",
        QUIRE_RATE_LIMIT_PER_MINUTE="0",
    ) as up:
        wait_for(lambda: len(up.workers()) == 1, 30, "the worker process")
        workers_before = sorted(p.pid for p in up.workers())
        with httpx.Client(base_url=up.base, headers=up.headers, timeout=120) as client:
            ordinary = [
                upload(client, "handbook.md", HANDBOOK.encode()),
                upload(client, "report.docx", fixtures.docx()),
                upload(client, "canteen.html", HTML.encode()),
            ]
            traversal = [
                upload(client, f"../../../../{escape}.md", b"# Unix path\n\nThe owls nest in the barn loft."),
                upload(client, f"..\\..\\..\\{escape}-win.md", b"# Windows path\n\nThe herons fish at dawn."),
            ]
            swifts = b"# Label\n\nThe swifts sleep on the wing."
            labelled = upload(client, "label.md", swifts, source_key="../../etc/x")
            hostile = {
                "bomb": upload(client, "bomb.docx", fixtures.docx_bomb(inflated_mb=512)),
                "laughs": upload(client, "laughs.xml", billion_laughs()),
                "xxe": upload(client, "note.xml", external_entity(secret)),
                "loop": upload(client, "loop.pdf", pdf_with_a_reference_loop()),
                "tangled": upload(client, "tangled.pdf", pdf_with_a_tangled_page_tree()),
                "wide": upload(client, "wide.csv", csv_with_a_long_line(50)),
            }
            with sparse.open("rb") as huge:
                too_large = upload(client, "huge.txt", huge)

            assert too_large.response.status_code == 413, too_large.response.text
            assert too_large.response.json()["error"]["code"] == "too_large"
            accepted = [*ordinary, *traversal, labelled, *hostile.values()]
            for item in accepted:
                assert item.response.status_code == 202, (item.name, item.response.text)

            pending = {item.document_id: item for item in accepted}
            versions: dict[str, dict[str, Any]] = {}

            def all_final() -> bool:
                for document_id, item in list(pending.items()):
                    version = version_of(client, item)
                    if version["status"] in FINAL:
                        versions[item.name] = version
                        del pending[document_id]
                return not pending

            wait_for(all_final, 120, "every upload to reach a final status")
            ingested = time.monotonic() - started

            # The ordinary documents, whatever their names, are indexed and searchable.
            for item, query in [
                (ordinary[0], "paid holiday"),
                (ordinary[1], "northern region growth"),
                (ordinary[2], "lentil soup"),
                (traversal[0], "owls nest barn"),
                (traversal[1], "herons fish dawn"),
                (labelled, "swifts sleep"),
            ]:
                assert versions[item.name]["status"] == "indexed", versions[item.name]
                hits = client.get("/v1/search", params={"q": query, "mode": "lexical"}).json()["hits"]
                assert hits and hits[0]["citation"]["document_id"] == item.document_id, (query, hits)

            # A hostile name is cut to its last component; a source key stays an inert label.
            cut = [f"{escape}.md", f"{escape}-win.md"]
            assert [versions[item.name]["filename"] for item in traversal] == cut
            assert [versions[item.name]["source_key"] for item in traversal] == cut
            assert versions["label.md"]["source_key"] == "../../etc/x"

            def failed(name: str, code: str, *words: str) -> None:
                version = versions[name]
                assert (version["status"], version["error_code"]) == ("failed", code), version
                reason = version["status_reason"]
                assert all(word in reason for word in words), reason
                assert "Traceback" not in reason and "\n" not in reason

            failed("bomb.docx", "memory_limit", "256 MB memory limit")
            failed("laughs.xml", "corrupt", "could not parse the XML file", "entity amplification")
            failed("loop.pdf", "corrupt", "refers to itself in a loop")
            failed("wide.csv", "parse_failed", "line 2 of the CSV file is 50.0 MB long")
            # The external entity is not read: the note is indexed without the secret.
            assert versions["note.xml"]["status"] == "indexed"
            assert "the-secret-marker" not in " ".join(elements_of(client, hostile["xxe"]))
            # Loops pdfminer guards against itself end quickly, with the page's text read.
            assert versions["tangled.pdf"]["status"] == "indexed"
            assert elements_of(client, hostile["tangled"]) == ["Tangled but readable"]

        # The worker never died: the same process, and no restart in the supervisor's log.
        assert sorted(p.pid for p in up.workers()) == workers_before
        log = up.log.read_text()
        assert "exited with" not in log and "restarting" not in log, log[-3000:]
        assert "Traceback" not in log, log[-3000:]

    # Nothing was written outside the blob store, which holds only files named by their hash.
    blobs = data_dir / "blobs"
    for base in (Path.cwd(), blobs, blobs / "00" / "00", tmp_path):
        for name in (f"{escape}.md", f"{escape}-win.md"):
            assert not (base / "../../../.." / name).resolve().exists()
    assert not [p for p in tmp_path.rglob(f"{escape}*")]
    stored = [p for p in blobs.rglob("*") if p.is_file()]
    assert stored and all(len(p.name) == 64 and p.parent.parent.parent == blobs for p in stored)
    assert sum(p.stat().st_size for p in stored) < 60 * 2**20  # the 1 GB upload left nothing
    print(f"batch ingested {ingested:.0f} s after `quire up` started")


# A file that crashes the parsing child on every attempt (a segfault in a C parser, the kernel's
# out-of-memory killer) must end its version as failed too, not leave it parsing for ever.


class CrashingParser(Parser):
    def parse(self, data: bytes, **kwargs: Any) -> ParsedDocument:
        raise ParserCrashed("the parser was killed by SIGSEGV")


@pytest.fixture
def crashing(content_database_url: str, tmp_path: Path) -> Iterator[tuple[Harness, ContentEnvironment]]:
    environment = ContentEnvironment(
        blobs=FileBlobStore(tmp_path / "blobs"), embedding_model="all-MiniLM-L6-v2", _parser=CrashingParser()
    )
    with make_harness(content_database_url, environment) as harness:
        yield harness, environment


def test_a_file_that_crashes_the_parser_every_time_ends_failed(
    crashing: tuple[Harness, ContentEnvironment], monkeypatch: pytest.MonkeyPatch
) -> None:
    harness, environment = crashing
    monkeypatch.setattr(ingestion, "PARSE_RETRY", RetryPolicy(max_attempts=2, base_delay=0.05))
    with harness.database.tenant_session(harness.tenant_id) as session:
        result = uploads.upload(
            session,
            request=uploads.UploadRequest(data=b"# Crash\n\nThis one crashes.", filename="crash.md"),
            blobs=environment.blobs,
            kicker=harness.kicker,
            created_by=None,
            max_bytes=2**20,
        )
        session.commit()
    assert result.run_id is not None
    harness.drive(until=1.5)

    assert harness.run(result.run_id).status == "failed"
    with harness.database.tenant_session(harness.tenant_id) as session:
        version = service.get_version(session, document_id=result.document_id, number=1)
    assert (version.status, version.error_code) == ("failed", "ingest_failed")
    assert version.status_reason == (
        "ingestion stopped at its 'parse' step: ParserCrashed: the parser was killed by SIGSEGV"
    )
