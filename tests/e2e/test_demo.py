"""`quire demo` on a fresh machine: two cited answers, approvals by the demo admin, and a second
run that makes nothing twice."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from quire.app.demo import ADMIN, APPROVE, TENANT
from quire.core.db import Database
from quire.core.models import Role
from quire.core.settings import Settings
from quire.core.tenancy import authenticate

pytestmark = pytest.mark.e2e

KEY = re.compile(r"demo admin's API key:\s+(qk_[A-Za-z0-9_-]{30,})")
COUNTS = {
    name: f"SELECT count(*) FROM {table} WHERE tenant_id = :tenant"
    for name, table in {
        "documents": "content_document",
        "versions": "content_version",
        "memory items": "memory_item",
        "memory versions": "memory_version",
        "principals": "core_principal",
        "api keys": "core_api_key",
    }.items()
}


def quire(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quire.app.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answer_to(output: str, number: int) -> tuple[str, str]:
    """The answer to question `number` and its list of sources, as printed."""
    after = output.split(f"Question {number}:", 1)[1]
    part = after.split("Question 2:" if number == 1 else "Next: the review console", 1)[0]
    answer, _, sources = part.partition("\nSources\n")
    return answer, sources


@dataclass(frozen=True)
class DemoRows:
    counts: dict[str, int]
    admins: list[tuple[uuid.UUID, str]]
    approved: list[tuple[uuid.UUID, str, uuid.UUID | None, list[str] | None]]
    in_review: int


def demo_rows(data_dir: Path) -> DemoRows:
    """Row counts of the demo tenant, its admins, its approved memories and who approved them."""
    database = Database.from_settings(Settings(data_dir=data_dir, secret_key=""), pool_size=1)
    try:
        with database.system_session() as system:
            tenant = system.execute(text("SELECT id FROM core_tenant WHERE name = :n"), {"n": TENANT}).one()[
                0
            ]
        with database.tenant_session(tenant) as session:
            counts = {
                name: int(session.execute(text(sql), {"tenant": tenant}).scalar_one())
                for name, sql in COUNTS.items()
            }
            admins = session.execute(
                text("SELECT id, role FROM core_principal WHERE tenant_id = :t AND name = :n"),
                {"t": tenant, "n": ADMIN},
            ).all()
            approved = session.execute(
                text(
                    "SELECT v.id, v.text, v.approved_by, "
                    "(SELECT array_agg(e.actor) FROM memory_event e "
                    " WHERE e.version_id = v.id AND e.type = 'memory.approved') "
                    "FROM memory_version v WHERE v.tenant_id = :t AND v.state = 'approved' ORDER BY v.id"
                ),
                {"t": tenant},
            ).all()
            in_review = session.execute(
                text("SELECT count(*) FROM memory_version WHERE tenant_id = :t AND state = 'in_review'"),
                {"t": tenant},
            ).scalar_one()
        return DemoRows(
            counts=counts,
            admins=[(row[0], row[1]) for row in admins],
            approved=[(row[0], row[1], row[2], row[3]) for row in approved],
            in_review=int(in_review),
        )
    finally:
        database.dispose()


def key_owner(data_dir: Path, key: str) -> tuple[uuid.UUID, Role]:
    database = Database.from_settings(Settings(data_dir=data_dir, secret_key=""), pool_size=1)
    try:
        with database.system_session() as session:
            caller = authenticate(session=session, key=key)
        return caller.principal_id, caller.role
    finally:
        database.dispose()


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: a pytest session starting alongside makes its parent folder
    # private again, and the embedded server (another system user) then loses its files.
    path = Path(tempfile.mkdtemp(prefix="quire-demo-"))
    yield path / "data"
    shutil.rmtree(path, ignore_errors=True)


def test_the_demo_answers_with_citations_and_runs_twice_without_duplicates(data_dir: Path) -> None:
    port = free_port()  # nothing listens there: the demo must say how to start the console
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUIRE_")}
    env.update(QUIRE_DATA_DIR=str(data_dir), QUIRE_API_BIND=f"127.0.0.1:{port}", COLUMNS="200")
    try:
        first = quire(env, "demo")
        output = first.stdout
        assert first.returncode == 0, output + first.stderr
        assert "Traceback" not in output + first.stderr

        assert output.count("ingested") >= 6 and "version 1 → 2: 1 changed, 1 added" in output
        answer, sources = answer_to(output, 1)
        assert '"A lost or stolen laptop must be reported to the security team within one hour' in answer
        assert re.search(
            r"\[(\d+)\] Information security policy \(v1, Information security policy > Incidents\)", sources
        )
        answer, sources = answer_to(output, 2)
        cited = re.search(r'"Every full-time employee has 27 days of paid holiday[^"]*" \[(\d+)\]', answer)
        assert cited is not None, answer
        assert re.search(rf"\[{cited.group(1)}\] memory: ", sources), sources  # the approved memory
        assert "Employee handbook (v2, " in sources  # the latest version, not the first
        assert f"http://127.0.0.1:{port}/console" in output and "quire up" in output
        key = KEY.search(output)
        assert key is not None, output

        rows = demo_rows(data_dir)
        assert len(rows.admins) == 1 and rows.admins[0][1] == "admin"
        admin_id = rows.admins[0][0]
        assert key_owner(data_dir, key.group(1)) == (admin_id, Role.admin)
        assert len(rows.approved) == len(APPROVE)
        for phrase in APPROVE:
            assert sum(phrase in text_ for _, text_, _, _ in rows.approved) == 1, phrase
        for _, _, approved_by, actors in rows.approved:  # the audit log names the demo admin
            assert approved_by == admin_id and actors == [str(admin_id)]
        assert rows.in_review >= 30  # the rest wait for a person in the console
        assert rows.counts["documents"] == 5 and rows.counts["versions"] == 6

        second = quire(env, "demo")
        assert second.returncode == 0, second.stdout + second.stderr
        assert second.stdout.count("already there") >= 6 and second.stdout.count("(approved before)") == len(
            APPROVE
        )
        again = KEY.search(second.stdout)
        assert again is not None and again.group(1) == key.group(1)
        assert demo_rows(data_dir) == rows
    finally:
        quire(env, "db", "stop")
