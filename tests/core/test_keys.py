"""API keys through the API: an admin lists and revokes its own tenant's keys, nobody else does."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from quire.core.db import Database
from quire.core.models import Role
from tests.factories import TenantFixture, auth, make_key


def key_id(client: TestClient, admin: str, key: str) -> str:
    """The id of `key`, found by its prefix in the admin's listing."""
    listing = client.get("/v1/keys", headers=auth(admin)).json()["data"]
    found: str = next(row["id"] for row in listing if row["prefix"] == key[:10])
    return found


@pytest.mark.parametrize("role", [Role.reader, Role.contributor, Role.reviewer])
def test_only_an_admin_lists_or_revokes_keys(
    role: Role, client: TestClient, database: Database, tenants: dict[str, TenantFixture]
) -> None:
    admin = make_key(database, tenants["acme"], Role.admin)
    caller = make_key(database, tenants["acme"], role)
    victim = make_key(database, tenants["acme"], Role.reader)
    victim_id = key_id(client, admin, victim)

    listed = client.get("/v1/keys", headers=auth(caller))
    assert listed.status_code == 403 and listed.json()["error"]["code"] == "forbidden"
    for target in (victim_id, key_id(client, admin, caller)):
        revoked = client.delete(f"/v1/keys/{target}", headers=auth(caller))
        assert revoked.status_code == 403 and "admin" in revoked.json()["error"]["message"]
    assert client.get("/v1/me", headers=auth(victim)).status_code == 200
    assert client.get("/v1/me", headers=auth(caller)).status_code == 200


def test_an_admin_lists_the_tenants_keys_without_their_hashes(
    client: TestClient, database: Database, tenants: dict[str, TenantFixture]
) -> None:
    admin = make_key(database, tenants["acme"], Role.admin, name="acme-admin")
    bot = make_key(database, tenants["acme"], Role.contributor, name="ci-bot")
    make_key(database, tenants["globex"], Role.reader, name="globex-reader")

    response = client.get("/v1/keys", headers=auth(admin))
    assert response.status_code == 200
    listing = response.json()
    assert listing["count"] == len(listing["data"])
    rows = {row["prefix"]: row for row in listing["data"]}
    assert "globex-reader" not in {row["name"] for row in listing["data"]}
    bot_row = rows[bot[:10]]
    assert (bot_row["name"], bot_row["role"], bot_row["revoked_at"]) == ("ci-bot", "contributor", None)
    me = client.get("/v1/me", headers=auth(bot)).json()
    assert bot_row["principal_id"] == me["id"]
    assert set(bot_row) == {"id", "prefix", "principal_id", "name", "role", "created_at", "revoked_at"}
    assert bot not in response.text and admin not in response.text


def test_an_admin_revokes_a_key_and_its_calls_get_401(
    client: TestClient, database: Database, tenants: dict[str, TenantFixture]
) -> None:
    admin = make_key(database, tenants["acme"], Role.admin)
    bot = make_key(database, tenants["acme"], Role.contributor, name="ci-bot")
    bot_id = key_id(client, admin, bot)
    assert client.get("/v1/me", headers=auth(bot)).status_code == 200

    revoked = client.delete(f"/v1/keys/{bot_id}", headers=auth(admin))
    assert revoked.status_code == 204 and revoked.content == b""
    refused = client.get("/v1/me", headers=auth(bot))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthenticated"
    row = next(r for r in client.get("/v1/keys", headers=auth(admin)).json()["data"] if r["id"] == bot_id)
    assert row["revoked_at"] is not None

    again = client.delete(f"/v1/keys/{bot_id}", headers=auth(admin))
    assert again.status_code == 204
    row_again = next(
        r for r in client.get("/v1/keys", headers=auth(admin)).json()["data"] if r["id"] == bot_id
    )
    assert row_again["revoked_at"] == row["revoked_at"]  # the first revocation's time stays
    assert client.get("/v1/me", headers=auth(admin)).status_code == 200


def test_another_tenants_key_or_an_unknown_id_is_404_and_nothing_changes(
    client: TestClient, database: Database, tenants: dict[str, TenantFixture]
) -> None:
    acme_admin = make_key(database, tenants["acme"], Role.admin)
    globex_admin = make_key(database, tenants["globex"], Role.admin)
    globex_reader = make_key(database, tenants["globex"], Role.reader)
    globex_reader_id = key_id(client, globex_admin, globex_reader)

    for target in (globex_reader_id, str(uuid.uuid4())):
        response = client.delete(f"/v1/keys/{target}", headers=auth(acme_admin))
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert client.get("/v1/me", headers=auth(globex_reader)).status_code == 200
    row = next(
        r
        for r in client.get("/v1/keys", headers=auth(globex_admin)).json()["data"]
        if r["id"] == globex_reader_id
    )
    assert row["revoked_at"] is None
    assert client.delete("/v1/keys/not-a-uuid", headers=auth(acme_admin)).status_code == 422


def test_a_key_made_through_the_api_is_revoked_by_the_id_it_came_with(
    client: TestClient, database: Database, tenants: dict[str, TenantFixture]
) -> None:
    admin = make_key(database, tenants["acme"], Role.admin)
    created = client.post("/v1/keys", json={"name": "ci", "role": "reader"}, headers=auth(admin))
    assert created.status_code == 201
    made = created.json()
    assert client.get("/v1/me", headers=auth(made["key"])).json()["id"] == made["principal_id"]

    assert client.delete(f"/v1/keys/{made['id']}", headers=auth(admin)).status_code == 204
    assert client.get("/v1/me", headers=auth(made["key"])).status_code == 401
