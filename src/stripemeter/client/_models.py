"""Values the SDK hands out: tracked events and the server's answers, as frozen dataclasses.

Quantities and amounts are ``Decimal`` (JSON numbers are decoded exactly), times are aware UTC
``datetime``. Every answer also keeps the JSON it was built from in ``raw``, so a field the server
adds later is reachable before the SDK names it.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from stripemeter.client._types import JSONObject, QuantityLike, TimeLike

EventStatus = Literal["accepted", "duplicate", "conflict", "held", "rejected"]
KEY_PREFIX = "sdk_"


def new_idempotency_key() -> str:
    """A fresh idempotency key: ``sdk_`` and a random UUID4 in hex (122 random bits)."""
    return f"{KEY_PREFIX}{uuid.uuid4().hex}"


def to_decimal(value: QuantityLike, *, name: str = "quantity") -> Decimal:
    """An exact Decimal from an int, Decimal, numeric string or float (by its shortest repr)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, not a boolean")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite")
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{name} must be a decimal number, got {value!r}") from None
    else:
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not number.is_finite():
        raise ValueError(f"{name} must be finite")
    return number


def format_decimal(number: Decimal) -> str:
    """The plain text of a Decimal, without exponent or trailing zeros."""
    if number == 0:
        return "0"
    return format(number.normalize(), "f")


def to_utc(value: TimeLike) -> datetime:
    """An aware UTC datetime from a datetime (naive = UTC) or an RFC 3339 string."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an RFC 3339 time: {value!r}") from None
        value = parsed
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime or an RFC 3339 string, got {type(value).__name__}")
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_time(at: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``: ``2025-01-16T14:30:00.123456Z`` (fraction only when non-zero)."""
    at = at.astimezone(UTC)
    text = at.strftime("%Y-%m-%dT%H:%M:%S")
    if at.microsecond:
        text += f".{at.microsecond:06d}".rstrip("0")
    return text + "Z"


def _opt_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value) == 10:  # a bare date
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
    return to_utc(value)


def _opt_decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    return to_decimal(value, name="value")


def _dec(value: Any) -> Decimal:
    return Decimal(0) if value is None else to_decimal(value, name="value")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Event:
    """A usage event as tracked: its idempotency key is fixed here, so every resend is a duplicate."""

    metric: str
    customer_ref: str
    quantity: Decimal
    ts: datetime
    idempotency_key: str
    meta: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    resource_id: str | None = None

    @classmethod
    def create(
        cls,
        *,
        metric: str,
        customer_ref: str,
        quantity: QuantityLike,
        ts: TimeLike | None = None,
        meta: Mapping[str, Any] | None = None,
        resource_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Event:
        """Check and build an event; ``ts`` defaults to now, the key to a fresh random one."""
        for name, text in (("metric", metric), ("customer_ref", customer_ref)):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{name} must be a non-empty string")
        if resource_id is not None and not isinstance(resource_id, str):
            raise TypeError("resource_id must be a string")
        if meta is not None:
            if not isinstance(meta, Mapping):
                raise TypeError("meta must be a mapping")
            meta = dict(meta)
            json.dumps(meta, allow_nan=False, default=_reject_unencodable)  # fail now, not later
        key = new_idempotency_key() if idempotency_key is None else idempotency_key
        if not isinstance(key, str) or not key.strip() or len(key) > 255:
            raise ValueError("idempotency_key must be a non-empty string of at most 255 characters")
        return cls(
            metric=metric,
            customer_ref=customer_ref,
            quantity=to_decimal(quantity),
            ts=datetime.now(UTC) if ts is None else to_utc(ts),
            idempotency_key=key,
            meta=meta,
            resource_id=resource_id,
        )

    def to_wire(self) -> JSONObject:
        """The camelCase JSON object the ingest API takes."""
        wire: JSONObject = {
            "metric": self.metric,
            "customerRef": self.customer_ref,
            # A string keeps the value exact; the server parses it as a decimal number.
            "quantity": format_decimal(self.quantity),
            "ts": format_time(self.ts),
            "idempotencyKey": self.idempotency_key,
            "source": "sdk",
        }
        if self.resource_id is not None:
            wire["resourceId"] = self.resource_id
        if self.meta:
            wire["meta"] = dict(self.meta)
        return wire

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> Event:
        """The event back from its wire form (as stored in the spool)."""
        return cls(
            metric=wire["metric"],
            customer_ref=wire["customerRef"],
            quantity=to_decimal(wire["quantity"]),
            ts=to_utc(wire["ts"]),
            idempotency_key=wire["idempotencyKey"],
            meta=wire.get("meta"),
            resource_id=wire.get("resourceId"),
        )


def _reject_unencodable(value: object) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return format_time(value)
    raise TypeError(f"meta values must be JSON: {type(value).__name__} is not")


def meta_default(value: object) -> Any:
    """``json.dumps`` default for meta values: Decimal as text, datetime as RFC 3339."""
    return _reject_unencodable(value)


@dataclass(frozen=True, slots=True)
class EventError:
    """Why the server rejected one event: the field, a stable code and a sentence."""

    field: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class EventResult:
    """The server's answer for one event of a batch."""

    index: int
    status: EventStatus
    idempotency_key: str | None = None
    event_id: int | None = None
    reason: str | None = None
    error: EventError | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EventResult:
        """Parse one item of an ingest response's ``results``."""
        error = data.get("error")
        return cls(
            index=int(data.get("index", -1)),
            status=data["status"],
            idempotency_key=data.get("idempotencyKey"),
            event_id=data.get("eventId"),
            reason=data.get("reason"),
            error=EventError(
                field=str(error.get("field", "")),
                code=str(error.get("code", "")),
                message=str(error.get("message", "")),
            )
            if isinstance(error, Mapping)
            else None,
        )


@dataclass(frozen=True, slots=True)
class IngestResult:
    """Totals and per-event results of one or more ingest requests."""

    accepted: int = 0
    duplicates: int = 0
    conflicts: int = 0
    held: int = 0
    rejected: int = 0
    results: tuple[EventResult, ...] = ()
    request_id: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IngestResult:
        """Parse an ingest response body."""
        return cls(
            accepted=int(data.get("accepted", 0)),
            duplicates=int(data.get("duplicates", 0)),
            conflicts=int(data.get("conflicts", 0)),
            held=int(data.get("held", 0)),
            rejected=int(data.get("rejected", 0)),
            results=tuple(EventResult.from_json(r) for r in data.get("results") or ()),
            request_id=data.get("requestId"),
        )

    def __add__(self, other: IngestResult) -> IngestResult:
        return IngestResult(
            accepted=self.accepted + other.accepted,
            duplicates=self.duplicates + other.duplicates,
            conflicts=self.conflicts + other.conflicts,
            held=self.held + other.held,
            rejected=self.rejected + other.rejected,
            results=self.results + other.results,
            request_id=other.request_id or self.request_id,
        )

    @property
    def sent(self) -> int:
        """How many events the server answered for."""
        return self.accepted + self.duplicates + self.conflicts + self.held + self.rejected


@dataclass(frozen=True, slots=True)
class UsageMetric:
    """One metric's counter in the period; ``current`` is its billing value under ``aggregation``."""

    name: str
    current: Decimal
    aggregation: str | None = None
    unit: str | None = None
    sum: Decimal | None = None
    max: Decimal | None = None
    last: Decimal | None = None
    count: int | None = None
    watermark: datetime | None = None
    updated_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UsageMetric:
        """Parse one item of ``metrics``."""
        count = data.get("count")
        return cls(
            name=str(data.get("metric") or data.get("name") or ""),
            current=_dec(data.get("value", data.get("current"))),
            aggregation=_text(data.get("aggregation")),
            unit=_text(data.get("unit")),
            sum=_opt_decimal(data.get("sum")),
            max=_opt_decimal(data.get("max")),
            last=_opt_decimal(data.get("last")),
            count=None if count is None else int(count),
            watermark=_opt_time(data.get("watermark")),
            updated_at=_opt_time(data.get("updatedAt")),
            raw=data,
        )

    @property
    def value(self) -> Decimal:
        """The billing value (same as ``current``, the original SDK's name)."""
        return self.current


@dataclass(frozen=True, slots=True)
class Usage:
    """A customer's usage in the current billing period (``GET /v1/usage/current``)."""

    customer_ref: str
    period_start: datetime | None
    period_end: datetime | None
    metrics: tuple[UsageMetric, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Usage:
        """Parse the response body."""
        period = data.get("period") or {}
        return cls(
            customer_ref=str(data.get("customerRef", "")),
            period_start=_opt_time(period.get("start", data.get("periodStart"))),
            period_end=_opt_time(period.get("end", data.get("periodEnd"))),
            metrics=tuple(UsageMetric.from_json(m) for m in data.get("metrics") or ()),
            raw=data,
        )

    def get(self, metric: str) -> UsageMetric | None:
        """The usage of one metric, or None when it has none this period."""
        return next((m for m in self.metrics if m.name == metric), None)


@dataclass(frozen=True, slots=True)
class UsagePoint:
    """One bucket of a usage history: ``[start, end)`` and its billing value."""

    start: datetime
    value: Decimal
    end: datetime | None = None
    label: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UsagePoint:
        """Parse one item of ``usage``."""
        start = data.get("start") or data.get("ts") or ""
        return cls(
            start=_opt_time(start) or to_utc(start),
            value=_dec(data.get("value")),
            end=_opt_time(data.get("end")),
            label=_text(data.get("ts")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class UsageHistory:
    """A metric's usage over time, in hour, day or month buckets (``GET /v1/usage/history``)."""

    points: tuple[UsagePoint, ...]
    customer_ref: str | None = None
    metric: str | None = None
    aggregation: str | None = None
    interval: str | None = None
    total: Decimal | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UsageHistory:
        """Parse the response body."""
        totals = data.get("totals")
        return cls(
            points=tuple(UsagePoint.from_json(p) for p in data.get("usage") or ()),
            customer_ref=_text(data.get("customerRef")),
            metric=_text(data.get("metric")),
            aggregation=_text(data.get("aggregation")),
            interval=_text(data.get("interval")),
            total=_opt_decimal(totals.get("value")) if isinstance(totals, Mapping) else None,
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class ProjectionLine:
    """One metric of a cost projection: so far and projected to the period end.

    ``total`` and ``projected_total`` are None when the metric has no price (``priced`` False).
    """

    metric: str
    quantity: Decimal
    total: Decimal | None
    priced: bool = True
    aggregation: str | None = None
    unit: str | None = None
    projected_quantity: Decimal | None = None
    projected_total: Decimal | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProjectionLine:
        """Parse one item of ``lineItems``."""
        projected = data.get("projected")
        projected = projected if isinstance(projected, Mapping) else {}
        return cls(
            metric=str(data.get("metric", "")),
            quantity=_dec(data.get("quantity")),
            total=_opt_decimal(data.get("total")),
            priced=bool(data.get("priced", True)),
            aggregation=_text(data.get("aggregation")),
            unit=_text(data.get("unit")),
            projected_quantity=_opt_decimal(projected.get("quantity")),
            projected_total=_opt_decimal(projected.get("total")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Projection:
    """What the customer's invoice will say (``POST /v1/usage/projection``), in major units.

    ``total`` is the invoice so far; ``projected_total`` the run-rate estimate at period end.
    ``complete`` is False when some metric has no price (``unpriced_metrics``).
    """

    customer_ref: str
    period_start: datetime | None
    period_end: datetime | None
    currency: str | None
    line_items: tuple[ProjectionLine, ...]
    subtotal: Decimal
    credits: Decimal
    tax: Decimal
    total: Decimal
    projected_total: Decimal | None = None
    complete: bool = True
    unpriced_metrics: tuple[str, ...] = ()
    as_of: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Projection:
        """Parse the response body."""
        projected = data.get("projected")
        return cls(
            customer_ref=str(data.get("customerRef", "")),
            period_start=_opt_time(data.get("periodStart")),
            period_end=_opt_time(data.get("periodEnd")),
            currency=_text(data.get("currency")),
            line_items=tuple(ProjectionLine.from_json(i) for i in data.get("lineItems") or ()),
            subtotal=_dec(data.get("subtotal")),
            credits=_dec(data.get("credits")),
            tax=_dec(data.get("tax")),
            total=_dec(data.get("total")),
            projected_total=_opt_decimal(projected.get("total"))
            if isinstance(projected, Mapping)
            else None,
            complete=bool(data.get("complete", True)),
            unpriced_metrics=tuple(str(m) for m in data.get("unpricedMetrics") or ()),
            as_of=_opt_time(data.get("asOf")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Entitlement:
    """Whether a customer may use more of a metric now (``GET /v1/entitlements``).

    ``allowed`` is false once the period's value reached a hard cap; ``hard_cap`` and ``remaining``
    are None when no hard cap applies, ``limit`` is the customer's configured limit (if any).
    """

    customer_ref: str
    metric: str
    allowed: bool
    value: Decimal
    hard_cap: Decimal | None = None
    remaining: Decimal | None = None
    limit: Decimal | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entitlement:
        """Parse the response body."""
        return cls(
            customer_ref=str(data.get("customerRef", "")),
            metric=str(data.get("metric", "")),
            allowed=bool(data.get("allowed", True)),
            value=_dec(data.get("value")),
            hard_cap=_opt_decimal(data.get("hardCap")),
            remaining=_opt_decimal(data.get("remaining")),
            limit=_opt_decimal(data.get("limit")),
            period_start=_opt_time(data.get("periodStart")),
            period_end=_opt_time(data.get("periodEnd")),
            raw=data,
        )

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event as stored in the ledger (``GET /v1/events``)."""

    id: int | None
    idempotency_key: str
    metric: str
    customer_ref: str
    quantity: Decimal
    ts: datetime
    status: str | None = None
    held_reason: str | None = None
    source: str | None = None
    resource_id: str | None = None
    meta: Mapping[str, Any] | None = field(default=None, compare=False)
    received_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EventRecord:
        """Parse one item of ``events``."""
        ident = data.get("id")
        return cls(
            id=ident if isinstance(ident, int) else None,
            idempotency_key=str(data.get("idempotencyKey") or ident or ""),
            metric=str(data.get("metric", "")),
            customer_ref=str(data.get("customerRef", "")),
            quantity=_dec(data.get("quantity")),
            ts=to_utc(data.get("ts") or data.get("timestamp") or ""),
            status=_text(data.get("status")),
            held_reason=_text(data.get("heldReason")),
            source=_text(data.get("source")),
            resource_id=_text(data.get("resourceId")),
            meta=data.get("meta"),
            received_at=_opt_time(data.get("receivedAt")),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Resource:
    """A record of the management API (mapping, customer, report, adjustment) as the server sent it.

    ``id`` is lifted out; every other field is in ``raw`` under its wire (camelCase) name, and
    ``resource["priceId"]`` reads one.
    """

    id: str | None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Resource:
        """Wrap one JSON object."""
        return cls(id=_text(data.get("id")), raw=data)

    def __getitem__(self, name: str) -> Any:
        return self.raw[name]

    def get(self, name: str, default: Any = None) -> Any:
        """A wire field, or ``default``."""
        return self.raw.get(name, default)


def resources(data: Any, key: str) -> tuple[Resource, ...]:
    """Records from a bare JSON array, or from ``data["data"]`` or ``data[key]``."""
    if isinstance(data, list):
        items: Sequence[Any] = data
    else:
        body = data if isinstance(data, Mapping) else {}
        items = body.get("data", body.get(key)) or ()
    return tuple(Resource.from_json(item) for item in items if isinstance(item, Mapping))
