"""The API's convention (docs/api.md), checked over the OpenAPI document and by calling it.

The document: every list answers `{data, count, next_cursor}` and takes `limit` and `cursor`;
every error it lists has the error body's schema; operation ids are unique snake_case; schema
names are plain class names; a DELETE answers 204, or 202 with a status link. The behaviour:
unreadable bodies are 400, invalid values 422, a deletion answers as documented, and following
`next_cursor` gives every item once while new ones arrive between pages.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from quire.app.api import create_app
from quire.core.db import Database
from quire.core.models import Role
from quire.core.settings import Settings
from tests.factories import TenantFixture, auth, make_key
from tests.harness import Harness

OPERATION_ID = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
SCHEMA_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
ERROR_SCHEMA = {"$ref": "#/components/schemas/Error"}
# GET operations that answer arrays but are not lists: ranked hits, a report, a comparison.
NOT_LISTS = {"search_documents", "search_memories", "get_usage", "diff_document_versions"}


@pytest.fixture(scope="module")
def document(settings: Settings) -> dict[str, Any]:
    database = Database("postgresql+psycopg://nobody@/none?host=/nonexistent")  # never connected
    app = create_app(settings=settings, database=database)
    openapi: dict[str, Any] = app.openapi()
    return openapi


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, by_method in document["paths"].items()
        for method, operation in by_method.items()
    ]


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def json_schema(response: dict[str, Any]) -> dict[str, Any] | None:
    content: dict[str, Any] | None = response.get("content", {}).get("application/json")
    return content.get("schema") if content else None


def test_operation_ids_are_unique_and_snake_case(document: dict[str, Any]) -> None:
    ids = [operation.get("operationId", "") for _, _, operation in operations(document)]
    assert [i for i in ids if not OPERATION_ID.match(i)] == []
    assert sorted(i for i in set(ids) if ids.count(i) > 1) == []


def test_schema_names_say_what_they_hold(document: dict[str, Any]) -> None:
    names = document["components"]["schemas"]
    assert [name for name in names if not SCHEMA_NAME.match(name)] == []
    # `…Public` tells a class from the table it shows; a client has no table to tell it from.
    assert [name for name in names if name.endswith("Public")] == []
    assert {"DocumentVersion", "AgentRun", "AgentRuns", "Error"} <= set(names)
    refs = re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(document))
    assert sorted(set(refs) - set(names)) == []  # every reference names a schema that is there


def test_every_error_response_has_the_error_body(document: dict[str, Any]) -> None:
    wrong = [
        f"{method} {path} {status}"
        for method, path, operation in operations(document)
        for status, response in operation["responses"].items()
        if status[0] in "45" and json_schema(response) != ERROR_SCHEMA
    ]
    assert wrong == []


def test_every_json_success_has_a_schema(document: dict[str, Any]) -> None:
    missing = [
        f"{method} {path} {status}"
        for method, path, operation in operations(document)
        for status, response in operation["responses"].items()
        if status.startswith("2") and "application/json" in response.get("content", {})
        if not json_schema(response)
    ]
    assert missing == []


def is_envelope(document: dict[str, Any], schema: dict[str, Any]) -> bool:
    body = resolve(document, schema)
    properties = body.get("properties", {})
    return (
        properties.get("data", {}).get("type") == "array"
        and properties.get("count", {}).get("type") == "integer"
        and {"type": "string"} in properties.get("next_cursor", {}).get("anyOf", [])
        and {"type": "null"} in properties.get("next_cursor", {}).get("anyOf", [])
        and {"data", "count", "next_cursor"} <= set(body.get("required", []))
    )


def test_every_list_answers_the_envelope_and_takes_limit_and_cursor(document: dict[str, Any]) -> None:
    lists = [(m, p, o) for m, p, o in operations(document) if o["operationId"].startswith("list_")]
    assert len(lists) >= 10
    wrong = []
    for method, path, operation in lists:
        parameters = {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "query"}
        schema = json_schema(operation["responses"]["200"]) or {}
        if method != "GET" or not is_envelope(document, schema):
            wrong.append(f"{method} {path}: not the list envelope")
        if "limit" not in parameters or "cursor" not in parameters or "offset" in parameters:
            wrong.append(f"{method} {path}: takes {sorted(parameters)}")
    assert wrong == []


def test_every_get_of_a_collection_is_a_list(document: dict[str, Any]) -> None:
    """A GET that answers an array (at the top, or in its body) of a path that names no single
    thing is a list and named as one: so no list escapes the check above."""
    escaped = []
    for method, path, operation in operations(document):
        schema = json_schema(operation["responses"].get("200", {}))
        if method != "GET" or schema is None or path.endswith("}"):
            continue
        body = resolve(document, schema)
        arrays = body.get("type") == "array" or any(
            resolve(document, p).get("type") == "array" for p in body.get("properties", {}).values()
        )
        name = operation["operationId"]
        if arrays and not name.startswith("list_") and name not in NOT_LISTS:
            escaped.append(f"{method} {path} ({name})")
    assert escaped == []


def test_no_operation_answers_a_bare_array(document: dict[str, Any]) -> None:
    bare = [
        f"{method} {path} {status}"
        for method, path, operation in operations(document)
        for status, response in operation["responses"].items()
        if resolve(document, json_schema(response) or {}).get("type") == "array"
    ]
    assert bare == []


def test_a_delete_answers_204_or_202_with_a_status_link(document: dict[str, Any]) -> None:
    wrong = []
    for method, path, operation in operations(document):
        if method != "DELETE":
            continue
        successes = {s for s in operation["responses"] if s.startswith("2")}
        if successes == {"204"}:
            if operation["responses"]["204"].get("content"):
                wrong.append(f"{path}: 204 with a body")
        elif successes == {"202"}:
            body = resolve(document, json_schema(operation["responses"]["202"]) or {})
            links = resolve(document, body.get("properties", {}).get("links", {}))
            if "status" not in links.get("properties", {}):
                wrong.append(f"{path}: 202 without links.status")
        else:
            wrong.append(f"{path}: answers {sorted(successes)}")
    assert wrong == []


def test_docs_api_lists_every_operation(document: dict[str, Any]) -> None:
    text = (Path(__file__).parent.parent / "docs" / "api.md").read_text()
    missing = [
        f"{method} {path} ({operation['operationId']})"
        for method, path, operation in operations(document)
        if f"| `{path}` | `{operation['operationId']}` |" not in text
    ]
    assert missing == [], "add them to the table of docs/api.md"


# Behaviour.


@pytest.fixture
def admin(database: Database, tenants: dict[str, TenantFixture]) -> dict[str, str]:
    return auth(make_key(database, tenants["acme"], Role.admin))


def test_an_unreadable_body_is_400_invalid_body(client: TestClient, admin: dict[str, str]) -> None:
    broken = client.post(
        "/v1/keys", content=b'{"name": "x", "role": ', headers={**admin, "Content-Type": "application/json"}
    )
    assert broken.status_code == 400, broken.text
    error = broken.json()["error"]
    assert error["code"] == "invalid_body" and "JSON" in error["message"]


def test_a_broken_multipart_form_is_400_invalid_body(client: TestClient, admin: dict[str, str]) -> None:
    broken = client.post(
        "/v1/documents",
        content=b"--b\r\nContent-Disposition: form-data; name=file\r\n\r\nno end",
        headers={**admin, "Content-Type": "multipart/form-data"},
    )
    assert broken.status_code == 400, broken.text
    assert broken.json()["error"]["code"] == "invalid_body"


def test_a_readable_body_with_invalid_values_is_422(client: TestClient, admin: dict[str, str]) -> None:
    invalid = client.post("/v1/keys", json={"name": "x", "role": "emperor"}, headers=admin)
    assert invalid.status_code == 422
    error = invalid.json()["error"]
    assert error["code"] == "invalid_request" and error["details"][0]["location"] == ["body", "role"]


def test_a_bad_cursor_is_422_invalid_cursor(client: TestClient, admin: dict[str, str]) -> None:
    for path in ("/v1/keys", "/v1/runs", "/v1/documents", "/v1/memories", "/v1/collections"):
        refused = client.get(path, params={"cursor": "not-a-cursor"}, headers=admin)
        assert refused.status_code == 422, path
        assert refused.json()["error"]["code"] == "invalid_cursor", path


def walk(client: TestClient, path: str, headers: dict[str, str], between: Any = None) -> list[str]:
    """Every id of a list, a page of two at a time; `between` runs after each page."""
    ids: list[str] = []
    cursor = None
    while True:
        page = client.get(
            path, params={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=headers
        )
        assert page.status_code == 200, page.text
        body = page.json()
        assert set(body) >= {"data", "count", "next_cursor"}
        ids.extend(row["id"] for row in body["data"])
        cursor = body["next_cursor"]
        if between:
            between()
        if cursor is None:
            return ids


def test_paging_gives_every_key_once_while_keys_are_added(
    client: TestClient, database: Database, tenants: dict[str, TenantFixture], admin: dict[str, str]
) -> None:
    for n in range(6):
        make_key(database, tenants["acme"], Role.reader, name=f"reader-{n}")
    before = {
        row["id"] for row in client.get("/v1/keys", params={"limit": 500}, headers=admin).json()["data"]
    }
    added = iter(range(100))

    ids = walk(
        client,
        "/v1/keys",
        admin,
        lambda: make_key(database, tenants["acme"], Role.reader, f"new-{next(added)}"),
    )

    assert len(ids) == len(set(ids))
    assert before <= set(ids)


def test_paging_gives_every_document_once_while_documents_are_uploaded(
    api: TestClient, content: Harness
) -> None:
    key = auth(
        make_key(content.database, TenantFixture(id=content.tenant_id, name="pages"), Role.contributor)
    )

    def upload(name: str) -> None:
        files = {"file": (f"{name}.md", f"# {name}\n\nSome text about {name}.".encode(), "text/markdown")}
        assert api.post("/v1/documents", files=files, headers=key).status_code == 202

    for n in range(7):
        upload(f"first-{n}")
    added = iter(range(100))

    ids = walk(api, "/v1/documents", key, lambda: upload(f"later-{next(added)}"))

    assert len(ids) == len(set(ids)) == 7  # newest first: the later ones come before the cursor
    assert api.get("/v1/documents", headers=key).json()["count"] == 7 + next(added)


def test_deletes_answer_204_when_done_and_202_with_a_status_link_when_not(
    api: TestClient, content: Harness
) -> None:
    tenant = TenantFixture(id=content.tenant_id, name="deletes")
    contributor = auth(make_key(content.database, tenant, Role.contributor))
    reviewer = auth(make_key(content.database, tenant, Role.reviewer))
    files = {
        "file": (
            "policy.md",
            b"# Policy\n\nEmployees must book flights through the portal.\n",
            "text/markdown",
        )
    }
    created = api.post("/v1/documents", files=files, headers=contributor).json()
    content.drive()

    memories = api.get("/v1/memories", headers=reviewer).json()["data"]
    assert memories, "the ingestion proposed no memory"
    withdrawn = api.delete(f"/v1/memories/{memories[0]['id']}", params={"reason": "old"}, headers=reviewer)
    assert withdrawn.status_code == 202, withdrawn.text
    status = withdrawn.json()["links"]["status"]
    assert status == f"/v1/memories/{memories[0]['id']}"
    assert api.get(status, headers=reviewer).status_code == 200

    deleted = api.delete(f"/v1/documents/{created['document_id']}", headers=contributor)
    assert deleted.status_code == 204 and deleted.content == b""
    assert api.get(f"/v1/documents/{created['document_id']}", headers=contributor).json()["deleted_at"]
    again = api.delete(f"/v1/documents/{created['document_id']}", headers=contributor)
    assert again.status_code == 204  # deleting what is deleted is done already
    assert api.delete(f"/v1/documents/{uuid.uuid4()}", headers=contributor).status_code == 404
