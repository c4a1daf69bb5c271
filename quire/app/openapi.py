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


def rename_form_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """The document with each form's schema under the name of FORM_SCHEMAS."""
    text = json.dumps(document)
    for generated, name in FORM_SCHEMAS.items():
        text = text.replace(f'"#/components/schemas/{generated}"', f'"#/components/schemas/{name}"')
    renamed: dict[str, Any] = json.loads(text)
    schemas = renamed.get("components", {}).get("schemas", {})
    for generated, name in FORM_SCHEMAS.items():
        if generated in schemas:
            schemas[name] = {**schemas.pop(generated), "title": name}
    return renamed
