"""The `quire` command's answers to bad set-ups: one line, a non-zero exit, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from quire.core.embedded import EmbeddedPostgres
from tests.factories import TEST_SECRET_KEY, TenantFixture, open_database


def quire(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QUIRE_")}
    return subprocess.run(
        [sys.executable, "-m", "quire.app.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr


def test_unreachable_database(tmp_path: Path) -> None:
    result = quire(
        "migrate",
        env={
            "QUIRE_DATABASE_URL": "postgresql://quire@127.0.0.1:1/quire",
            "QUIRE_DATA_DIR": str(tmp_path),
        },
    )
    assert_one_clear_line(result, "cannot reach the database", "QUIRE_DATABASE_URL")


def test_unreachable_broker(database_url: str, tmp_path: Path) -> None:
    result = quire(
        "worker",
        env={
            "QUIRE_DATABASE_URL": database_url,
            "QUIRE_SECRET_KEY": TEST_SECRET_KEY,
            "QUIRE_BROKER_URL": "redis://127.0.0.1:1/0",
            "QUIRE_DATA_DIR": str(tmp_path),
        },
    )
    assert_one_clear_line(result, "cannot reach the broker", "QUIRE_BROKER_URL")


@pytest.mark.parametrize(("name", "value"), [("QUIRE_API_BIND", "everywhere"), ("QUIRE_WORKR_THREADS", "4")])
def test_bad_settings_name_the_variable(name: str, value: str, tmp_path: Path) -> None:
    result = quire("migrate", env={name: value, "QUIRE_DATA_DIR": str(tmp_path)})
    assert_one_clear_line(result, name)


@pytest.mark.parametrize(
    "command", [("up",), ("migrate",), ("worker",), ("api",), ("db", "status"), ("keys", "list")]
)
def test_every_command_refuses_a_malformed_model_before_it_starts(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    try:
        result = quire(*command, env={"QUIRE_MODEL": "gpt-4", "QUIRE_DATA_DIR": str(tmp_path)})
        assert_one_clear_line(result, "QUIRE_MODEL", "provider:model")
        assert not (tmp_path / "postgres").exists()  # nothing was started
    finally:
        EmbeddedPostgres(tmp_path).stop()  # had it been, it would not outlive the test


@pytest.mark.parametrize("command", ["migrate", "api", "worker"])
def test_the_database_url_is_shown_as_written_without_its_password(command: str, tmp_path: Path) -> None:
    written = "postgres://quire:hunter2@127.0.0.1:1/quire?connect_timeout=2"
    result = quire(command, env={"QUIRE_DATABASE_URL": written, "QUIRE_DATA_DIR": str(tmp_path)})
    assert_one_clear_line(result, "postgres://quire:***@127.0.0.1:1/quire?connect_timeout=2")
    assert "hunter2" not in result.stderr and "+psycopg" not in result.stderr


def test_the_broker_url_is_shown_as_written_without_its_password(database_url: str, tmp_path: Path) -> None:
    result = quire(
        "worker",
        env={
            "QUIRE_DATABASE_URL": database_url,
            "QUIRE_SECRET_KEY": TEST_SECRET_KEY,
            "QUIRE_BROKER_URL": "redis://default:hunter2@127.0.0.1:1/0",
            "QUIRE_DATA_DIR": str(tmp_path),
        },
    )
    assert_one_clear_line(result, "redis://default:***@127.0.0.1:1/0")
    assert "hunter2" not in result.stderr


def test_keys_for_an_unknown_tenant(database_url: str, tmp_path: Path) -> None:
    result = quire(
        "keys",
        "create",
        "--role",
        "reviewer",
        "--tenant",
        "nobody",
        env={
            "QUIRE_DATABASE_URL": database_url,
            "QUIRE_SECRET_KEY": TEST_SECRET_KEY,
            "QUIRE_DATA_DIR": str(tmp_path),
        },
    )
    assert_one_clear_line(result, "no tenant named 'nobody'")


def test_keys_list_and_revoke_by_id_or_prefix(
    database_url: str, tenants: dict[str, TenantFixture], tmp_path: Path
) -> None:
    env = {
        "QUIRE_DATABASE_URL": database_url,
        "QUIRE_SECRET_KEY": TEST_SECRET_KEY,
        "QUIRE_DATA_DIR": str(tmp_path),
        "COLUMNS": "250",
    }
    tenant = f"cli-{uuid.uuid4().hex[:8]}"
    try:
        created = quire("tenant-create", tenant, env=env)
        assert created.returncode == 0, created.stderr
        admin = created.stdout.split()[-1]
        ana, bob = (
            quire(
                "keys", "create", "--role", "reader", "--name", name, "--tenant", tenant, env=env
            ).stdout.split()[-1]
            for name in ("ana", "bob")
        )

        listed = quire("keys", "list", "--tenant", tenant, env=env)
        assert listed.returncode == 0, listed.stderr
        assert "3 keys" in listed.stdout
        for key, name in ((admin, "admin"), (ana, "ana"), (bob, "bob")):
            line = line_of(listed.stdout, key)
            assert name in line and "live" in line
            assert key not in listed.stdout  # only prefixes, never a key
        ana_id = next(word for word in line_of(listed.stdout, ana).split() if is_uuid(word))

        by_id = quire("keys", "revoke", ana_id, "--tenant", tenant, env=env)
        assert by_id.returncode == 0 and "Revoked" in by_id.stdout, by_id.stderr
        by_prefix = quire("keys", "revoke", bob[:10], "--tenant", tenant, env=env)
        assert by_prefix.returncode == 0 and "Revoked" in by_prefix.stdout, by_prefix.stderr
        twice = quire("keys", "revoke", ana_id, "--tenant", tenant, env=env)
        assert twice.returncode == 0 and "already revoked" in twice.stdout, twice.stderr

        after = quire("keys", "list", "--tenant", tenant, env=env).stdout
        assert "live" in line_of(after, admin)
        assert "revoked" in line_of(after, ana) and "revoked" in line_of(after, bob)

        unknown = quire("keys", "revoke", str(uuid.uuid4()), "--tenant", tenant, env=env)
        assert_one_clear_line(unknown, "no key with id")
        # Another tenant's key id is unknown here.
        elsewhere = quire("keys", "revoke", ana_id, "--tenant", tenants["acme"].name, env=env)
        assert_one_clear_line(elsewhere, "no key with id")
    finally:
        delete_tenant(database_url, tenant)


def is_uuid(word: str) -> bool:
    try:
        uuid.UUID(word)
    except ValueError:
        return False
    return True


def line_of(output: str, key: str) -> str:
    return next(line for line in output.splitlines() if key[:10] in line)


def delete_tenant(database_url: str, name: str) -> None:
    database = open_database(database_url, pool_size=1)
    try:
        with database.system_session() as session:
            session.execute(text("DELETE FROM core_tenant WHERE name = :name"), {"name": name})
            session.commit()
    finally:
        database.dispose()
