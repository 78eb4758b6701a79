"""What the sync and the async client share: settings, request building and reading answers.

Nothing here sends a request or sleeps; the two clients do that (``_client.py``, ``_async_client.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from stripemeter._version import __version__
from stripemeter.client._config import (
    MAX_BATCH_SIZE,
    Retry,
    Timeout,
    UseClientDefault,
    default_spool_dir,
    spool_name,
)
from stripemeter.client._exceptions import (
    APIError,
    AuthenticationError,
    ConflictError,
    EventsRejectedError,
    NetworkError,
    NetworkTimeout,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StripeMeterError,
    ValidationError,
)
from stripemeter.client._models import (
    Event,
    EventResult,
    IngestResult,
    format_time,
    meta_default,
    to_utc,
)
from stripemeter.client._retry import Answered, parse_retry_after
from stripemeter.client._spool import SpooledEvent
from stripemeter.client._types import JSONObject, QuantityLike, QueryParams, SpoolSetting, TimeLike

log = logging.getLogger("stripemeter.client")

TimeoutSetting = Timeout | float | None
ErrorCallback = Callable[[StripeMeterError], None]

_ERRORS: dict[int, type[APIError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
}


def as_timeout(value: TimeoutSetting) -> Timeout:
    """A ``Timeout`` from a number of seconds, a ``Timeout`` or ``None`` (no timeout)."""
    if isinstance(value, Timeout):
        return value
    return Timeout(None if value is None else float(value))


def decode_json(response: httpx.Response) -> Any:
    """The body as JSON with exact decimals, or None when it is empty or not JSON."""
    if not response.content:
        return None
    try:
        return json.loads(response.content, parse_float=Decimal)
    except ValueError:
        return None


def error_from_response(
    response: httpx.Response, *, results: Sequence[EventResult] = ()
) -> APIError:
    """The most specific ``APIError`` for an error answer, filled from the error envelope."""
    body = decode_json(response)
    envelope = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(envelope, Mapping):
        envelope = {"message": response.text[:500] or response.reason_phrase}
    status = response.status_code
    cls = _ERRORS.get(status) or (ServerError if status >= 500 else APIError)
    fields: dict[str, Any] = {
        "status": status,
        "code": str(envelope.get("code") or ""),
        "error_type": str(envelope.get("type") or ""),
        "param": envelope.get("param"),
        "details": envelope.get("details"),
        "request_id": response.headers.get("x-request-id")
        or (body.get("requestId") if isinstance(body, Mapping) else None),
        "retry_after": parse_retry_after(
            response.headers.get("retry-after"), now=datetime.now(UTC)
        ),
    }
    message = str(envelope.get("message") or f"HTTP {status}")
    if cls is ValidationError:
        return ValidationError(message, results=results, **fields)
    return cls(message, **fields)


def network_error(exc: httpx.TransportError) -> NetworkError:
    """The SDK's error for a transport failure (a timeout is the more specific one)."""
    if isinstance(exc, httpx.TimeoutException):
        return NetworkTimeout(f"no answer in time: {exc!r}")
    return NetworkError(f"the server could not be reached: {exc!r}")


def outcome_of(response: httpx.Response) -> Answered:
    """The retry flow's view of an answer."""
    retry_after = parse_retry_after(response.headers.get("retry-after"), now=datetime.now(UTC))
    return Answered(response.status_code, retry_after)


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What one ingest answer means for the events sent: which left the store, what went wrong."""

    answered: tuple[int, ...]
    result: IngestResult
    rejected: tuple[tuple[EventResult, Event], ...]
    error: APIError | None


def interpret_ingest(batch: Sequence[SpooledEvent], response: httpx.Response) -> BatchOutcome:
    """Read an ingest answer: an event with a result was answered, whatever its status."""
    body = decode_json(response)
    listed = isinstance(body, Mapping) and isinstance(body.get("results"), list)
    if response.status_code == 200 or (response.status_code == 400 and listed):
        assert isinstance(body, Mapping)
        result = IngestResult.from_json(body)
        answered: list[int] = []
        rejected: list[tuple[EventResult, Event]] = []
        for item in result.results:
            if 0 <= item.index < len(batch):
                answered.append(batch[item.index].seq)
                if item.status in ("rejected", "conflict"):  # neither is counted
                    rejected.append((item, batch[item.index].event))
        return BatchOutcome(tuple(answered), result, tuple(rejected), None)
    return BatchOutcome((), IngestResult(), (), error_from_response(response))


def ingest_answer(response: httpx.Response) -> IngestResult:
    """The per-event answer of an ingest request, also when every event was rejected (400).

    Raises the ``APIError`` of any other error answer.
    """
    body = decode_json(response)
    listed = isinstance(body, Mapping) and isinstance(body.get("results"), list)
    if response.status_code == 200 or (response.status_code == 400 and listed):
        assert isinstance(body, Mapping)
        return IngestResult.from_json(body)
    raise error_from_response(response)


def rejection_error(
    rejected: Sequence[tuple[EventResult, Event]], status: int = 400
) -> EventsRejectedError:
    """The error that reports events the server refused."""
    first_result, _ = rejected[0]
    why = first_result.error.message if first_result.error else first_result.reason or "rejected"
    more = f" (and {len(rejected) - 1} more)" if len(rejected) > 1 else ""
    return EventsRejectedError(
        f"the server rejected {len(rejected)} event(s): {why}{more}",
        results=[r for r, _ in rejected],
        events=[e for _, e in rejected],
        status=status,
    )


def query(**params: Any) -> QueryParams:
    """Query parameters without the ``None`` ones; datetimes in RFC 3339, decimals as text."""
    out: QueryParams = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            out[name] = format_time(to_utc(value))
        elif isinstance(value, bool | int | str):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def camel(name: str) -> str:
    """``price_id`` → ``priceId``; wire names are camelCase."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def wire_fields(fields: Mapping[str, Any]) -> JSONObject:
    """Keyword arguments as a camelCase JSON object, ``None`` values left out."""
    out: JSONObject = {}
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = format_time(to_utc(value))
        elif isinstance(value, Decimal):
            value = str(value)
        out[camel(name)] = value
    return out


class BaseClient:
    """Settings and pure helpers of both clients."""

    def __init__(
        self,
        *,
        api_url: str,
        api_key: str | None,
        tenant_id: str | None,
        customer_id: str | None,
        timeout: TimeoutSetting,
        retry: Retry | None,
        batch_size: int,
        flush_interval: float | None,
        spool: SpoolSetting,
        close_budget: float | None,
        on_error: ErrorCallback | None,
        rng: Callable[[], float] | None,
    ) -> None:
        if not api_url:
            raise ValueError("api_url is required, e.g. http://localhost:3000")
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
        if flush_interval is not None and flush_interval <= 0:
            raise ValueError("flush_interval must be positive (or None: no background flushes)")
        self.api_url = str(httpx.URL(api_url)).rstrip("/")
        self.tenant_id = tenant_id
        self.customer_id = customer_id
        self.timeout = as_timeout(timeout)
        self.retry = retry
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.close_budget = close_budget
        self._api_key = api_key
        self._on_error = on_error
        self._random = rng or random.random
        self.spool_path = self._spool_path(spool)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(api_url={self.api_url!r}, tenant_id={self.tenant_id!r}, "
            f"spool={str(self.spool_path) if self.spool_path else None!r})"
        )

    def _spool_path(self, spool: SpoolSetting) -> Path | None:
        if spool is None or spool is False:
            return None
        directory = default_spool_dir() if spool is True else Path(spool)
        if directory.suffix in (".sqlite3", ".db", ".sqlite"):
            return directory  # a file path: use it as is
        return directory / spool_name(self.api_url, self._spool_namespace())

    def _spool_namespace(self) -> str:
        # The tenant when it is given; otherwise the key decides (a key belongs to one tenant).
        if self.tenant_id:
            return f"tenant:{self.tenant_id}"
        if self._api_key:
            return "key:" + hashlib.sha256(self._api_key.encode()).hexdigest()[:16]
        return "anonymous"

    def _headers(self) -> dict[str, str]:
        headers = {
            "User-Agent": f"stripemeter-python/{__version__}",
            "Accept": "application/json",
        }
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _request_timeout(self, timeout: TimeoutSetting | UseClientDefault) -> httpx.Timeout:
        if isinstance(timeout, UseClientDefault):
            return self.timeout.to_httpx()
        return as_timeout(timeout).to_httpx()

    def _request_retry(self, retry: Retry | UseClientDefault | None) -> Retry | None:
        return self.retry if isinstance(retry, UseClientDefault) else retry

    def _event(
        self,
        *,
        metric: str,
        customer_ref: str | None,
        quantity: QuantityLike,
        ts: TimeLike | None,
        meta: Mapping[str, Any] | None,
        resource_id: str | None,
        idempotency_key: str | None,
    ) -> Event:
        ref = customer_ref if customer_ref is not None else self.customer_id
        if ref is None:
            raise ValueError("customer_ref is required (or set customer_id on the client)")
        return Event.create(
            metric=metric,
            customer_ref=ref,
            quantity=quantity,
            ts=ts,
            meta=meta,
            resource_id=resource_id,
            idempotency_key=idempotency_key,
        )

    def _events(self, events: Sequence[Event | Mapping[str, Any]]) -> list[Event]:
        built: list[Event] = []
        for item in events:
            if isinstance(item, Event):
                built.append(item)
                continue
            if not isinstance(item, Mapping):
                raise TypeError("track_many takes Event objects or dicts of track()'s arguments")
            built.append(
                self._event(
                    metric=item["metric"],
                    customer_ref=item.get("customer_ref"),
                    quantity=item["quantity"],
                    ts=item.get("ts"),
                    meta=item.get("meta"),
                    resource_id=item.get("resource_id"),
                    idempotency_key=item.get("idempotency_key"),
                )
            )
        return built

    def _ingest_content(self, events: Sequence[Event]) -> bytes:
        body: JSONObject = {"events": [e.to_wire() for e in events]}
        if self.tenant_id:
            body["tenantId"] = self.tenant_id
        return json.dumps(body, default=meta_default, separators=(",", ":")).encode()

    def _wire_ingest_content(self, events: Sequence[Mapping[str, Any]]) -> bytes:
        body: JSONObject = {"events": list(events)}
        if self.tenant_id:
            body["tenantId"] = self.tenant_id
        return json.dumps(body, default=meta_default, separators=(",", ":")).encode()

    def _report(self, error: StripeMeterError) -> None:
        """Tell the application about a failure of background work."""
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:
                log.exception("the on_error callback failed")
            return
        if isinstance(error, EventsRejectedError):
            log.warning("stripemeter: %s", error)
        else:
            log.warning("stripemeter: flush failed, events stay queued: %s", error)
