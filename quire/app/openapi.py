"""Names in the OpenAPI document that clients can build on: operation ids and schema names."""

from __future__ import annotations

import json
from typing import Any

from fastapi.routing import APIRoute

# FastAPI names a form's schema `Body_<operation id>`; these are the names it gets instead.
FORM_SCHEMAS = {"Body_upload_document": "DocumentUploadForm"}


def operation_id(route: APIRoute) -> str:
    """The route function's name (`list_documents`, `start_agent_run`): unique, snake_case, and
    stable while the function keeps its name (tests/test_api_contract.py checks both)."""
    return route.name


def rename_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """The document with its schemas under the names clients see: a form's under FORM_SCHEMAS,
    and a model's without the `Public` its class carries to tell it from the table it shows
    (`DocumentVersionPublic` is `DocumentVersion`), where that name is free."""
    schemas = document.get("components", {}).get("schemas", {})
    names = dict(FORM_SCHEMAS)
    for name in schemas:
        plain = name.removesuffix("Public")
        if plain != name and plain and plain not in schemas and plain not in names.values():
            names[name] = plain
    text = json.dumps(document)
    for generated, name in names.items():
        text = text.replace(f'"#/components/schemas/{generated}"', f'"#/components/schemas/{name}"')
    renamed: dict[str, Any] = json.loads(text)
    schemas = renamed.get("components", {}).get("schemas", {})
    for generated, name in names.items():
        if generated in schemas:
            schemas[name] = {**schemas.pop(generated), "title": name}
    renamed["components"]["schemas"] = dict(sorted(schemas.items()))
    return renamed
