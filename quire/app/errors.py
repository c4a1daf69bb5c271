"""Quire's exceptions as HTTP responses, in one place: `{"error": {"code", "message"}}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from quire.core import errors

logger = logging.getLogger(__name__)

STATUS_BY_ERROR: list[tuple[type[errors.QuireError], int]] = [
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.InvalidRequest, 422),
    (errors.ServiceUnavailable, 503),
    (errors.ConfigurationError, 500),
]

HTTP_CODES = {
    400: "bad_request",
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


def register_error(error_type: type[errors.QuireError], status: int) -> None:
    """Let a package's error map to an HTTP status (most specific class first)."""
    if (error_type, status) not in STATUS_BY_ERROR:
        STATUS_BY_ERROR.insert(0, (error_type, status))


def status_for(error: errors.QuireError) -> int:
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status
    return 400


def error_body(code: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"code": code, "message": message, **extra}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.QuireError)
    async def quire_error(request: Request, error: errors.QuireError) -> JSONResponse:
        status = status_for(error)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(error_body(error.code, str(error)), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        details = [
            {"location": list(item.get("loc", ())), "message": item.get("msg", "")} for item in error.errors()
        ]
        message = "; ".join(
            f"{'.'.join(str(part) for part in d['location'])}: {d['message']}" for d in details
        )
        return JSONResponse(error_body("invalid_request", message, details=details), status_code=422)

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
