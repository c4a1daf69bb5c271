"""`quire ingest`, in process: how files are keyed to documents, empty files, retrying failures."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import text

from quire.app.ingest import ingest_paths
from quire.core.errors import QuireError
from quire.core.models import Tenant
from quire.core.settings import Settings
from tests.factories import BreakableEmbedder
from tests.harness import Harness

HANDBOOK = "# Handbook\n\n## Holidays\n\nEvery employee gets 27 days of paid holiday a year.\n"


@pytest.fixture
def run(content: Harness, tmp_path: Path):  # type: ignore[no-untyped-def]
    """`quire ingest` against the content test database, as the harness's tenant; returns
    (failures, what it printed)."""
    with content.database.system_session() as session:
        tenant = session.get(Tenant, content.tenant_id)
        assert tenant is not None
        name = tenant.name
    settings = Settings(data_dir=tmp_path / "data", database_url=content.database.url)

    def ingest(*paths: Path | str, **options: object) -> tuple[int, str]:
        buffer = io.StringIO()
        console = Console(file=buffer, width=300)
        failures = ingest_paths(
            settings,
            [Path(p) for p in paths],
            collection="default",
            tags=(),
            tenant=name,
            console=console,
            **options,  # type: ignore[arg-type]
        )
        return failures, buffer.getvalue()

    return ingest


def documents(content: Harness) -> dict[str, list[str]]:
    """Source key -> the statuses of its versions, in order."""
    with content.database.tenant_session(content.tenant_id) as session:
        rows = session.execute(
            text(
                "SELECT d.source_key, v.status FROM content_document d "
                "JOIN content_version v ON v.document_id = d.id ORDER BY d.source_key, v.number"
            )
        ).all()
    found: dict[str, list[str]] = {}
    for key, status in rows:
        found.setdefault(key, []).append(status)
    return found


def test_a_file_keeps_its_document_however_its_path_is_typed(
    run, content: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    examples = tmp_path / "examples"
    (examples / "policies").mkdir(parents=True)
    (examples / "handbook.md").write_text(HANDBOOK)
    (examples / "policies" / "leave.md").write_text("# Leave\n\nAsk your lead two weeks ahead.\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert run(examples.resolve())[0] == 0

    (examples / "handbook.md").write_text(HANDBOOK + "\nParking is free.\n")
    monkeypatch.chdir(tmp_path)
    failures, printed = run("examples/handbook.md")
    assert failures == 0, printed
    assert documents(content) == {"handbook.md": ["indexed", "indexed"], "policies/leave.md": ["indexed"]}

    monkeypatch.chdir(examples)
    failures, printed = run(".")
    assert failures == 0 and "2 unchanged" in printed, printed


def test_hidden_files_and_folders_are_judged_below_the_root_only(
    run, content: Harness, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / ".config" / "docs"
    (root / ".git").mkdir(parents=True)
    (root / "handbook.md").write_text(HANDBOOK)
    (root / ".draft.md").write_text("# Draft\n\nNot yet.\n")
    (root / ".git" / "notes.md").write_text("# Notes\n\nInternal.\n")
    failures, printed = run(root)
    assert failures == 0 and "Nothing to ingest" not in printed, printed
    assert documents(content) == {"handbook.md": ["indexed"]}


def test_source_key_names_one_files_document(run, content: Harness, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = tmp_path / "v1" / "handbook.md"
    second = tmp_path / "v2" / "staff-handbook.md"
    for path, body in ((first, HANDBOOK), (second, HANDBOOK + "\nParking is free.\n")):
        path.parent.mkdir()
        path.write_text(body)
    assert run(first, source_key="hr/handbook")[0] == 0
    assert run(second, source_key="hr/handbook")[0] == 0
    assert documents(content) == {"hr/handbook": ["indexed", "indexed"]}
    with pytest.raises(QuireError, match="one file"):
        run(tmp_path / "v1", tmp_path / "v2", source_key="hr/handbook")


def test_two_files_of_one_command_with_the_same_key_are_refused(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "readme.md").write_text(f"# Readme {folder}\n\nText.\n")
    with pytest.raises(QuireError, match=r"'readme\.md'"):
        run(tmp_path / "a" / "readme.md", tmp_path / "b" / "readme.md")


def test_an_empty_file_fails_on_its_own_and_the_others_go_on(run, content: Harness, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "empty.txt").write_bytes(b"")
    (tmp_path / "docs" / "handbook.md").write_text(HANDBOOK)
    failures, printed = run(tmp_path / "docs")
    assert failures == 1, printed
    assert "empty.txt" in printed and "the file is empty" in printed
    assert documents(content) == {"handbook.md": ["indexed"]}


def test_failed_versions_are_retried(
    run, content: Harness, tmp_path: Path, embedder: BreakableEmbedder
) -> None:  # type: ignore[no-untyped-def]
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "handbook.md").write_text(HANDBOOK)
    (docs / "leave.md").write_text("# Leave\n\nAsk your lead two weeks ahead.\n")
    embedder.broken = True
    failures, printed = run(docs)
    assert failures == 2, printed
    assert documents(content) == {"handbook.md": ["failed"], "leave.md": ["failed"]}
    embedder.broken = False

    failures, printed = run(docs / "leave.md")  # its bytes again: retried, not "unchanged"
    assert failures == 0 and "1 ingested" in printed, printed
    assert documents(content) == {"handbook.md": ["failed"], "leave.md": ["indexed"]}

    failures, printed = run(retry_failed=True)  # no paths: every failed version of the collection
    assert failures == 0 and "1 ingested" in printed and "handbook.md" in printed, printed
    assert documents(content) == {"handbook.md": ["indexed"], "leave.md": ["indexed"]}
    failures, printed = run(retry_failed=True)
    assert failures == 0 and "No failed version" in printed, printed
