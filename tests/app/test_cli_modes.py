"""The `quire` commands that read and write a tenant's data, run in both of their modes with the
same assertions: through the API (QUIRE_URL and QUIRE_API_KEY set; a real server on a port) and
on the local database (neither set)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from typer.testing import CliRunner

from quire.app.cli import app
from quire.app.cli_ingest import ApiIngester
from quire.core.models import Role, Tenant
from quire.core.settings import Settings
from quire.runtime.context import RunContext
from quire.runtime.programs import program
from tests.factories import BreakableEmbedder, TenantFixture, auth, make_key
from tests.harness import Harness
from tests.served import served_api

HANDBOOK = (
    "# Handbook\n\n## Holidays\n\nEvery employee gets 27 days of paid holiday a year, plus the public "
    "holidays of their country. Unused days carry over until March.\n\n"
    "## Equipment\n\nLaptops are replaced every three years. Ask the IT desk for a new one.\n"
)
TENANT_COMMANDS = {"ingest", "search", "ask", "runs", "memories", "keys"}


@dataclass
class Cli:
    mode: str
    env: dict[str, str]
    tenant: str
    runner: CliRunner = field(default_factory=CliRunner)

    def __call__(self, *args: str) -> Any:
        if self.mode == "local" and args[0] in TENANT_COMMANDS:
            args = (*args, "--tenant", self.tenant)
        return self.runner.invoke(app, list(args), env=self.env, catch_exceptions=False)

    def json(self, *args: str) -> Any:
        result = self(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture(params=["api", "local"])
def cli(
    request: pytest.FixtureRequest,
    content: Harness,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Cli]:
    with content.database.system_session() as session:
        tenant = session.get(Tenant, content.tenant_id)
        assert tenant is not None
        name = tenant.name
    base = {"COLUMNS": "250", "QUIRE_DATA_DIR": str(tmp_path / "data")}
    for variable in ("QUIRE_URL", "QUIRE_API_KEY", "QUIRE_DATABASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    if request.param == "local":
        yield Cli("local", {**base, "QUIRE_DATABASE_URL": content.database.url}, name)
        return
    key = make_key(content.database, TenantFixture(id=content.tenant_id, name=name), Role.admin)
    with served_api(content, settings) as url:
        # No database URL: a command that reached for the database would fail.
        yield Cli("api", {**base, "QUIRE_URL": url, "QUIRE_API_KEY": key}, name)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    made = tmp_path / "docs"
    made.mkdir()
    (made / "handbook.md").write_text(HANDBOOK)
    return made


def test_ingest_search_and_ask(cli: Cli, folder: Path) -> None:
    first = cli("ingest", str(folder))
    assert first.exit_code == 0, first.output
    assert "1 ingested" in first.stdout

    again = cli.json("ingest", str(folder))
    assert [(o["key"], o["status"]) for o in again["outcomes"]] == [("handbook.md", "unchanged")]

    found = cli("search", "paid holiday", "-k", "2")
    assert found.exit_code == 0, found.output
    lines = found.stdout.strip().splitlines()
    assert lines[0].startswith("1. ") and "v1" in lines[0] and "Holidays" in lines[0]
    assert "27 days" in lines[0]  # title, version, section and snippet on one line
    assert "…, plus" not in found.stdout and ", plus" not in lines[0][:40]
    assert lines[-1].startswith("searched in ") and lines[-1].endswith(" ms")

    hits = cli.json("search", "paid holiday", "-k", "2", "-c", "default")
    assert hits["hits"][0]["citation"]["section"][-1] == "Holidays"
    assert hits["hits"][0]["citation"]["version"] == 1
    assert cli.json("search", "paid holiday", "-c", "elsewhere")["hits"] == []

    answer = cli.json("ask", "How many days of paid holiday does an employee get?")
    assert answer["status"] == "completed" and "27" in answer["answer"]
    assert (
        answer["citations"]
        and answer["citations"][0]["document_id"] == hits["hits"][0]["citation"]["document_id"]
    )
    # One shape for a citation: a search hit's names its source as an answer's does.
    shared = {"document_id", "title", "version", "version_id", "chunk_id", "element_id", "element_ids"}
    shared |= {"page", "pages", "section"}
    assert shared <= set(answer["citations"][0]) and shared <= set(hits["hits"][0]["citation"])

    shown = cli("ask", "How many days of paid holiday does an employee get?")
    assert shown.exit_code == 0, shown.output
    assert "Sources" in shown.stdout and "Holidays" in shown.stdout.split("Sources", 1)[1]

    runs = cli.json("runs", "list")
    assert answer["id"] in [run["id"] for run in runs["data"]]
    assert cli("runs", "show", answer["id"]).exit_code == 0
    assert cli.json("runs", "show", answer["id"])["status"] == "completed"

    ended = cli("runs", "signal", answer["id"], "go", "--dedup-key", "once")
    assert ended.exit_code == 1 and "has completed; it takes no more signals" in ended.stderr
    again_run = cli("runs", "retry", answer["id"])
    assert again_run.exit_code == 1 and again_run.stderr.startswith("error: ")

    # The ingestion proposed memories from the handbook (a background run: a worker, or the
    # local command itself, takes it once the version is indexed).
    deadline = time.monotonic() + 120
    while not (memories := cli.json("memories", "list", "--state", "in_review"))["data"]:
        assert time.monotonic() < deadline, "no memory was proposed"
        time.sleep(0.5)
    assert all(m["latest"]["state"] == "in_review" and m["latest"]["text"] for m in memories["data"])
    table = cli("memories", "list", "--state", "in_review").stdout
    assert f"of {memories['count']} memories" in table and memories["data"][0]["id"] in table


def test_an_unknown_run_is_one_error_line(cli: Cli) -> None:
    missing = str(uuid.uuid4())
    result = cli("runs", "show", missing)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and f"no run {missing}" in result.stderr
    assert "Traceback" not in result.output


def test_memories_list(cli: Cli) -> None:
    listed = cli.json("memories", "list")
    assert listed["data"] == [] and listed["count"] == 0
    assert "No memories" in cli("memories", "list").stdout


def test_keys_create_list_revoke(cli: Cli) -> None:
    created = cli("keys", "create", "--role", "reader", "--name", "ana")
    assert created.exit_code == 0, created.output
    ana = created.stdout.split()[-1]
    assert ana.startswith("qk_")

    listed = cli.json("keys", "list")
    mine = [k for k in listed["data"] if k["name"] == "ana"]
    assert len(mine) == 1 and mine[0]["role"] == "reader" and mine[0]["revoked_at"] is None
    assert ana not in json.dumps(listed)  # prefixes only, never a key
    assert ana.startswith(mine[0]["prefix"])

    revoked = cli("keys", "revoke", ana[:10])
    assert revoked.exit_code == 0 and "Revoked" in revoked.stdout, revoked.output
    after = next(k for k in cli.json("keys", "list")["data"] if k["name"] == "ana")
    assert after["revoked_at"] is not None


def test_half_a_remote_configuration_is_one_clear_error(tmp_path: Path) -> None:
    env = {"QUIRE_URL": "http://127.0.0.1:1", "QUIRE_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, ["search", "holidays"], env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: QUIRE_URL is set but QUIRE_API_KEY is not")


def test_an_unreachable_api_is_one_clear_error(tmp_path: Path) -> None:
    env = {"QUIRE_URL": "http://127.0.0.1:1", "QUIRE_API_KEY": "qk_x", "QUIRE_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, ["search", "holidays"], env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot reach Quire at http://127.0.0.1:1 (QUIRE_URL)")


def test_commands_of_the_local_database_accept_the_client_variables(tmp_path: Path) -> None:
    # QUIRE_URL is the client's: a shell that exports it for `quire search` still runs `quire db`.
    env = {"QUIRE_URL": "http://127.0.0.1:1", "QUIRE_API_KEY": "qk_x", "QUIRE_DATA_DIR": str(tmp_path)}
    result = CliRunner().invoke(app, ["db", "status"], env=env)
    assert "unknown Quire setting" not in result.output
    assert result.exit_code == 3 and "not running" in result.stdout


def test_an_empty_file_fails_with_its_reason(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty.md"
    empty.write_bytes(b"")
    result = cli("ingest", str(empty), "--json")
    assert result.exit_code == 1
    (outcome,) = json.loads(result.stdout)["outcomes"]
    assert outcome["key"] == "empty.md" and outcome["status"] == "failed" and "empty" in outcome["reason"]


def test_ingest_retry_failed_retries_the_failed_latest_versions_of_the_collection(
    cli: Cli, folder: Path, tmp_path: Path, embedder: BreakableEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ApiIngester, "page_size", 1)  # through the API: one failed document a page
    (folder / "travel.md").write_text("# Travel\n\nTrains are booked through the portal.\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.md").write_text("# Notes\n\nThe office closes at six.\n")
    embedder.broken = True  # the embedding model is down: every ingestion fails half-way
    broken = cli("ingest", str(folder), "--json")
    assert broken.exit_code == 1, broken.output
    assert [o["status"] for o in json.loads(broken.stdout)["outcomes"]] == ["failed", "failed"]
    assert cli("ingest", str(other), "-c", "other").exit_code == 1
    embedder.broken = False

    # Of the files named: their documents' failed versions, from the bytes stored (nothing is uploaded).
    (folder / "travel.md").write_text("# Travel\n\nThese bytes are not the failed version's.\n")
    named = cli.json("ingest", "--retry-failed", str(folder / "travel.md"))
    assert [(o["key"], o["status"]) for o in named["outcomes"]] == [("travel.md", "ingested")]
    assert named["outcomes"][0]["file"] == str(folder / "travel.md")
    # Of the whole collection when no path is given.
    retried = cli("ingest", "--retry-failed")
    assert retried.exit_code == 0, retried.output
    assert "1 ingested" in retried.stdout and "handbook.md" in retried.stdout
    assert "travel.md" not in retried.stdout and "notes.md" not in retried.stdout  # another collection's
    again = cli("ingest", "--retry-failed")
    assert again.exit_code == 0 and "No failed version to retry." in again.stdout

    elsewhere = cli.json("ingest", "--retry-failed", "-c", "other")
    (notes,) = elsewhere["outcomes"]
    assert (notes["file"], notes["key"], notes["status"]) == (None, "notes.md", "ingested")
    assert elsewhere["failed"] == 0 and notes["document_id"] and notes["version_id"]
    assert cli.json("search", "office closes", "-c", "other")["hits"]
    travel = cli.json("search", "trains booked", "-c", "default")["hits"][0]["citation"]
    assert travel["title"] == "Travel" and travel["version"] == 1  # no upload made a v2


class Parked(BaseModel):
    note: str = ""


@program("test.cli-parked")
def parked(ctx: RunContext, state: Parked) -> Parked:
    ctx.wait_for_signal("go")
    return state


def settle(cli: Cli, content: Harness, run_id: uuid.UUID, status: str) -> None:
    """Wait until the run has `status`: through the API a served worker moves it; on the local
    database nothing does, so the test drives it as a worker would."""
    deadline = time.monotonic() + 60
    while content.run(run_id).status != status:
        assert time.monotonic() < deadline, f"run {run_id} is {content.run(run_id).status}, not {status}"
        if cli.mode == "local":
            content.drive(until=0.2)
        else:
            time.sleep(0.1)


def test_runs_cancel_stops_a_parked_run(cli: Cli, content: Harness, api: TestClient) -> None:
    run_id = content.start("test.cli-parked", Parked())
    settle(cli, content, run_id, "waiting")

    cancelled = cli("runs", "cancel", str(run_id), "--reason", "not needed")
    assert cancelled.exit_code == 0, cancelled.output
    assert f"Cancelling {run_id}" in cancelled.stdout
    settle(cli, content, run_id, "cancelled")

    admin = auth(make_key(content.database, TenantFixture(id=content.tenant_id, name=cli.tenant), Role.admin))
    run = api.get(f"/v1/runs/{run_id}", headers=admin).json()
    assert run["status"] == "cancelled" and run["cancel_requested"] is True
    stream = api.get(f"/v1/runs/{run_id}/events", headers=admin).text
    events = [json.loads(line[len("data: ") :]) for line in stream.splitlines() if line.startswith("data: ")]
    asked = [e["data"] for e in events if e.get("type") == "run.cancel_requested"]
    assert [a["reason"] for a in asked] == ["not needed"]  # the reason, kept in the run's events
    assert cli.json("runs", "show", str(run_id))["status"] == "cancelled"
    twice = cli("runs", "cancel", str(run_id))
    assert twice.exit_code == 1 and "has cancelled already" in twice.stderr
