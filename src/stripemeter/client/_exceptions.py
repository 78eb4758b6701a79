"""The SDK's errors, one tree; catch the root, a branch or a leaf.

```
StripeMeterError
├── ClientClosedError          the client was closed; it sends nothing more
├── NetworkError               no answer: connection refused or reset, DNS, TLS…
│   └── NetworkTimeout         no answer in time (the request may or may not have been applied)
└── APIError                   the server answered with an error status
    ├── ValidationError        400: the request or its events are invalid (never retried)
    │   └── EventsRejectedError  some tracked events were answered "rejected"
    ├── AuthenticationError    401: missing, unknown, expired or revoked API key
    ├── PermissionDeniedError  403: the key lacks a scope, or the tenant does not match
    ├── NotFoundError          404
    ├── ConflictError          409: an idempotency key re-used with another request
    ├── RateLimitError         429, after the retries ran out
    └── ServerError            5xx, after the retries ran out
```

Network errors, 429 and 5xx are retried first (see ``Retry``); the error is raised when the retries
run out. Errors of the transport (httpx) are translated here and chained with ``raise … from``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from stripemeter.client._models import Event, EventResult


class StripeMeterError(Exception):
    """Any error raised by the StripeMeter SDK."""


class ClientClosedError(StripeMeterError):
    """The client is closed; create a new one to send more."""


class NetworkError(StripeMeterError):
    """The server could not be reached or did not answer."""


class NetworkTimeout(NetworkError):
    """The server did not answer in time."""


class APIError(StripeMeterError):
    """The server answered with an error status and the error envelope."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str = "",
        error_type: str = "",
        param: str | None = None,
        details: Any = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.error_type = error_type
        self.param = param
        self.details = details
        self.request_id = request_id
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f" (param {self.param})" if self.param else ""
        code = f" {self.code}" if self.code else ""
        return f"{self.status}{code}: {self.message}{where}"


class ValidationError(APIError):
    """The request or its events are invalid; retrying the same request cannot help.

    ``results`` holds the per-event results of an ingest request when the server sent them.
    """

    def __init__(self, message: str, *, results: Sequence[EventResult] = (), **fields: Any) -> None:
        super().__init__(message, **fields)
        self.results: tuple[EventResult, ...] = tuple(results)


class EventsRejectedError(ValidationError):
    """The server answered for every event, but did not count some of them.

    Each is ``rejected`` (invalid, with the field and reason) or ``conflict`` (its idempotency key
    was used before with another payload). They are not retried (they left the spool).
    ``results`` holds their results and ``events`` the events themselves, in the same order.
    """

    def __init__(
        self,
        message: str,
        *,
        results: Sequence[EventResult],
        events: Sequence[Event],
        status: int = 400,
    ) -> None:
        first = results[0].error if results else None
        super().__init__(
            message,
            results=results,
            status=status,
            code=first.code if first else "rejected",
            param=first.field if first else None,
        )
        self.events: tuple[Event, ...] = tuple(events)


class AuthenticationError(APIError):
    """The API key is missing, unknown, expired or revoked."""


class PermissionDeniedError(APIError):
    """The API key is valid but may not do this (a scope, or another tenant)."""


class NotFoundError(APIError):
    """No such resource in this tenant."""


class ConflictError(APIError):
    """The request conflicts with an earlier one (an idempotency key re-used)."""


class RateLimitError(APIError):
    """Too many requests, still refused after the retries; ``retry_after`` says when to come back."""


class ServerError(APIError):
    """The server failed (5xx), still after the retries."""
