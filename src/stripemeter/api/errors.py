"""One error envelope everywhere: ``{"error": {"type", "code", "message", "param"?, "details"?}}``."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from stripemeter.api.json import JSON
from stripemeter.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    StripeMeterError,
    Unauthorized,
)

log = structlog.get_logger("stripemeter.api")


class PayloadTooLarge(StripeMeterError):
    """A request body over the configured limit."""

    code = "payload_too_large"


# Most specific first: the first matching class decides (status, type).
_STATUS: list[tuple[type[StripeMeterError], int, str]] = [
    (PayloadTooLarge, 413, "invalid_request_error"),
    (InvalidInput, 400, "invalid_request_error"),
    (Unauthorized, 401, "authentication_error"),
    (Forbidden, 403, "permission_error"),
    (NotFound, 404, "invalid_request_error"),
    (Conflict, 409, "invalid_request_error"),
]


_LOCATIONS = ("body", "query", "path", "header", "cookie")
_IDEMPOTENCY_CODES = ("idempotency", "request_in_progress")


def envelope(
    status: int,
    type_: str,
    code: str,
    message: str,
    *,
    param: str | None = None,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Render the error envelope."""
    body: dict[str, Any] = {"type": type_, "code": code, "message": message}
    if param is not None:
        body["param"] = param
    if details is not None:
        body["details"] = details
    return JSON({"error": body}, status_code=status, headers=headers)


def status_of(exc: StripeMeterError) -> tuple[int, str]:
    """(HTTP status, error type) for a domain error."""
    for cls, status, type_ in _STATUS:
        if isinstance(exc, cls):
            if isinstance(exc, Conflict) and exc.code.startswith(_IDEMPOTENCY_CODES):
                return status, "idempotency_error"
            return status, type_
    return 500, "api_error"


def domain_error_response(exc: StripeMeterError) -> Response:
    """The envelope for a domain error (shared by the handlers and the ingest edge)."""
    status, type_ = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return envelope(
        status, type_, exc.code, exc.message, param=exc.param, details=exc.details, headers=headers
    )


def unexpected_error_response(exc: Exception) -> Response:
    """The 500 envelope; the exception is logged with its traceback, never shown."""
    log.exception("unhandled_error", error=type(exc).__name__)
    return envelope(
        500,
        "api_error",
        "internal_error",
        "an internal error occurred; nothing was acknowledged by this request",
    )


async def _domain_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StripeMeterError)
    return domain_error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    where = list(first.get("loc", ()))
    # The first element names where the value was (body, query, path, header), not the field.
    loc = [str(part) for part in (where[1:] if where[:1] and where[0] in _LOCATIONS else where)]
    param = ".".join(loc) or None
    details = [
        {"param": ".".join(str(p) for p in e.get("loc", ())[1:]), "message": e.get("msg", "")}
        for e in errors
    ]
    message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
    return envelope(
        400, "invalid_request_error", "invalid_parameter", message, param=param, details=details
    )


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    type_ = "invalid_request_error" if exc.status_code < 500 else "api_error"
    return envelope(
        exc.status_code,
        type_,
        codes.get(exc.status_code, "http_error"),
        str(exc.detail),
        headers=getattr(exc, "headers", None),
    )


async def _unexpected(_request: Request, exc: Exception) -> Response:
    return unexpected_error_response(exc)


def install(app: FastAPI) -> None:
    """Register the handlers that render every error in the envelope."""
    app.add_exception_handler(StripeMeterError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
