"""Quire's exceptions as HTTP responses, in one place: `{"error": {"code", "message"}}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from quire.app.openapi import rename_schemas
from quire.core import errors

logger = logging.getLogger(__name__)

# Each package's errors derive from one of these categories, which decide the status (the first
# that matches, so the more specific come first); an error of no category is a 422, what was
# asked could not be done. 400 is kept for bodies that cannot be read at all (docs/api.md).
STATUS_BY_ERROR: tuple[tuple[type[errors.QuireError], int], ...] = (
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.InvalidRequest, 422),
    (errors.TooLarge, 413),
    (errors.ServiceUnavailable, 503),
    (errors.ConfigurationError, 500),
    (errors.InternalError, 500),
)

HTTP_CODES = {
    400: "invalid_body",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


ERROR_DESCRIPTIONS = {
    400: "The body could not be read (not UTF-8 JSON, or a broken multipart form)",
    401: "No API key, or one that is unknown or revoked",
    403: "The key's role does not allow this",
    404: "Nothing with that id here, or nothing the caller may see",
    413: "The body is over QUIRE_MAX_REQUEST_KB (an upload: QUIRE_MAX_UPLOAD_MB); nothing was stored",
    422: "A value in the request is invalid, or asks for something that cannot be done",
    429: "Too many requests for this API key; retry after the Retry-After header's seconds",
}


class InvalidInput(BaseModel):
    location: list[str | int] = Field(description="Where the input is: body, query, path, header.")
    message: str


class ErrorInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(description="Stable; clients may switch on it.")
    message: str = Field(description="What went wrong, for people.")
    details: list[InvalidInput] | None = Field(default=None, description="Each invalid input (422).")


class ErrorPublic(BaseModel):
    """The body of every error response."""

    error: ErrorInfo


def status_for(error: errors.QuireError) -> int:
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status
    return 422


def error_body(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, **extra}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.QuireError)
    async def quire_error(request: Request, error: errors.QuireError) -> JSONResponse:
        status = status_for(error)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        # An error may name what it is about for clients to act on (`extra`: JSON fields).
        extra = getattr(error, "extra", None)
        body = error_body(error.code, str(error), **(extra if isinstance(extra, dict) else {}))
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        unreadable = [item for item in error.errors() if item.get("type") == "json_invalid"]
        if unreadable:
            where = unreadable[0].get("loc", ("body", 0))[-1]
            reason = unreadable[0].get("ctx", {}).get("error", "not JSON")
            message = f"the body is not valid JSON: {reason} (at character {where})"
            return JSONResponse(error_body("invalid_body", message), status_code=400)
        details = [
            {"location": list(item.get("loc", ())), "message": item.get("msg", "")} for item in error.errors()
        ]
        message = "; ".join(
            f"{'.'.join(str(part) for part in d['location'])}: {d['message']}" for d in details
        )
        return JSONResponse(error_body("invalid_request", message, details=details), status_code=422)

    @app.exception_handler(DataError)
    async def unstorable_value(request: Request, error: DataError) -> JSONResponse:
        # The database refused a value the request carried (a NUL character, a number out of its
        # column's range) that validation let through: the request's fault, said plainly.
        reason = str(error.orig).strip().splitlines()[0] if error.orig else "it does not fit"
        message = f"a value in the request cannot be stored or compared: {reason}"
        return JSONResponse(error_body("invalid_request", message), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(error.status_code, "error")
        return JSONResponse(
            error_body(code, str(error.detail)),
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("internal_error", "Quire hit an unexpected error; it is in the server log"),
            status_code=500,
        )


def document_errors(app: FastAPI) -> None:
    """Make the OpenAPI document list the errors operations answer with, in their real shape.

    Every authenticated operation may answer 401, 403 and 429, one with a path parameter 404, one
    with a body 400 and 413, one with inputs 422; a route declares the others it answers with
    (409, ...) by status and description. Each 4xx gets the schema of `ErrorPublic`, in place of
    FastAPI's default for 422.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        _, definitions = models_json_schema(
            [(ErrorPublic, "serialization")], ref_template="#/components/schemas/{model}"
        )
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        schemas.update(definitions["$defs"])
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorPublic"}}}
        for path, operations in document.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                statuses = [401, 403, 429] if operation.get("security") else []
                if "{" in path:
                    statuses.append(404)
                if operation.get("requestBody"):
                    statuses.extend([400, 413])
                if operation.get("parameters") or operation.get("requestBody"):
                    statuses.append(422)
                for status in statuses:
                    responses.setdefault(str(status), {"description": ERROR_DESCRIPTIONS[status]})
                for status, response in responses.items():
                    if status.startswith("4") and ("content" not in response or status == "422"):
                        response["content"] = error
        app.openapi_schema = rename_schemas(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
