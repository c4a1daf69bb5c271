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
from typer.testing import CliRunner

from quire.app.cli import app
from quire.core.models import Role, Tenant
from quire.core.settings import Settings
from tests.factories import TenantFixture, make_key
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
    assert hits["hits"][0]["citation"]["section_path"][-1] == "Holidays"
    assert hits["hits"][0]["citation"]["version_number"] == 1
    assert cli.json("search", "paid holiday", "-c", "elsewhere")["hits"] == []

    answer = cli.json("ask", "How many days of paid holiday does an employee get?")
    assert answer["status"] == "completed" and "27" in answer["answer"]
    assert (
        answer["citations"]
        and answer["citations"][0]["document_id"] == hits["hits"][0]["citation"]["document_id"]
    )

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
