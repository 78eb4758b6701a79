"""Our own Stripe error tree, and the one place the ``stripe`` package's errors are translated.

StripeCallError
 ├── Transient                  worth retrying with backoff
 │    ├── RateLimited           429
 │    ├── ServerError           5xx
 │    ├── NetworkError          no (complete) response
 │    │    └── Timeout          no response in time (Stripe may still have applied the call)
 │    ├── SessionExpired        v2 meter event session token expired (renew, then retry)
 │    └── CircuitOpen           our breaker refused to call (account unhealthy)
 ├── Permanent                  retrying the same request cannot help: park the row
 │    ├── InvalidRequest        400 (param and code when Stripe gives them)
 │    │    └── IdempotencyMismatch   an Idempotency-Key reused with other parameters
 │    ├── NotFound              404 resource_missing (customer, meter, item)
 │    └── AuthError             401/403: key missing, revoked or lacking permission
 └── DuplicateIdentifier        Stripe already holds an event with this identifier: delivered

Each error keeps Stripe's ``Stripe-Should-Retry`` verdict (``should_retry``); the retry policy
(``stripe.retry``) weighs it against the class.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
import stripe


class StripeCallError(Exception):
    """Root of every failure of a call to Stripe, as the pusher sees it."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        should_retry: bool | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.param = param
        self.request_id = request_id
        self.should_retry = should_retry
        self.retry_after = retry_after

    @property
    def reason(self) -> str:
        """A short, stable text for the write log and metrics labels."""
        parts = [type(self).__name__]
        if self.status is not None:
            parts.append(str(self.status))
        if self.code:
            parts.append(self.code)
        return ":".join(parts) + f": {self.message}"[:300]


class Transient(StripeCallError):
    """A failure that may pass: retry with backoff."""


class RateLimited(Transient):
    """Stripe answered 429."""


class ServerError(Transient):
    """Stripe answered 5xx."""


class NetworkError(Transient):
    """The connection failed or closed before a complete response arrived."""


class Timeout(NetworkError):
    """No response in time; Stripe may or may not have applied the call."""


class SessionExpired(Transient):
    """The v2 meter event session token expired."""


class CircuitOpen(Transient):
    """The account's circuit breaker is open: the call was not made."""


class CallSlotBusy(Transient):
    """Another process kept calling Stripe for this (customer, meter): the call was not made."""


class Permanent(StripeCallError):
    """Retrying the same request cannot succeed."""


class InvalidRequest(Permanent):
    """Stripe refused the request's parameters (400)."""


class IdempotencyMismatch(InvalidRequest):
    """An Idempotency-Key was reused with different parameters."""


class NotFound(Permanent):
    """A Stripe object the request names does not exist (404)."""


class AuthError(Permanent):
    """The key is missing, invalid, or lacks permission (401/403)."""


class DuplicateIdentifier(StripeCallError):
    """Stripe already holds a meter event with this identifier: the push was delivered."""


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    for key, value in headers.items():
        if key.lower() == name:
            return str(value)
    return None


def is_duplicate_identifier(exc: stripe.StripeError) -> bool:
    """Whether Stripe refused a meter event because its identifier is already taken."""
    message = (getattr(exc, "user_message", None) or str(exc._message or "")).lower()
    code = (exc.code or "").lower()
    return exc.http_status == 400 and (
        code in ("duplicate_meter_event", "resource_already_exists")
        or ("already exists" in message and "identifier" in message)
    )


def translate(exc: stripe.StripeError) -> StripeCallError:
    """The most specific error of our tree for a ``stripe`` package error."""
    headers = exc.headers
    should_retry_header = _header(headers, "stripe-should-retry")
    should_retry = None if should_retry_header is None else should_retry_header == "true"
    retry_after_header = _header(headers, "retry-after")
    retry_after = None
    if retry_after_header is not None:
        try:
            retry_after = float(retry_after_header)
        except ValueError:
            retry_after = None
    param = getattr(exc, "param", None)
    fields: dict[str, Any] = {
        "status": exc.http_status,
        "code": exc.code,
        "param": param,
        "request_id": exc.request_id,
        "should_retry": should_retry,
        "retry_after": retry_after,
    }
    message = str(exc._message or type(exc).__name__)
    if is_duplicate_identifier(exc):
        return DuplicateIdentifier(message, **fields)
    return _class_for(exc)(message, **fields)


def _class_for(exc: stripe.StripeError) -> type[StripeCallError]:
    status = exc.http_status
    if isinstance(exc, stripe.APIConnectionError):
        cause = exc.__cause__
        if isinstance(cause, httpx.TimeoutException | TimeoutError):
            return Timeout
        return NetworkError
    if isinstance(exc, stripe.TemporarySessionExpiredError):
        return SessionExpired
    if isinstance(exc, stripe.IdempotencyError):
        return IdempotencyMismatch
    if isinstance(exc, stripe.RateLimitError) or status == 429:
        return RateLimited
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError) or status in (401, 403):
        return AuthError
    if status is not None and status >= 500:
        return ServerError
    if status == 404:
        return NotFound
    if status == 409:
        return Transient  # lock contention on Stripe's side; Stripe documents it as retryable
    if isinstance(exc, stripe.APIError) and status is None:
        return ServerError
    return InvalidRequest


@contextmanager
def map_stripe_errors() -> Iterator[None]:
    """Raise our tree's error for anything the ``stripe`` package (or the network) raises."""
    try:
        yield
    except stripe.StripeError as exc:
        raise translate(exc) from exc
    except (httpx.TimeoutException, TimeoutError) as exc:
        raise Timeout(f"no response from Stripe: {type(exc).__name__}") from exc
    except (httpx.TransportError, OSError) as exc:
        raise NetworkError(f"connection to Stripe failed: {type(exc).__name__}") from exc
