"""Usage events: validation of one wire event into a value, or a precise rejection."""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from stripemeter.domain.quantities import QuantityError, canonical, parse_quantity
from stripemeter.domain.times import TimeError, parse_event_time

MAX_METRIC_LENGTH = 100
MAX_CUSTOMER_REF_LENGTH = 255
MAX_RESOURCE_ID_LENGTH = 255
MAX_IDEMPOTENCY_KEY_LENGTH = 255
DEFAULT_MAX_META_BYTES = 4096
DEFAULT_MAX_FUTURE = timedelta(minutes=5)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_canonical_json = msgspec.json.Encoder(decimal_format="number", order="sorted")


class Source(enum.StrEnum):
    """Where an event came from; only ``correction`` may carry a negative quantity."""

    SDK = "sdk"
    HTTP = "http"
    ETL = "etl"
    IMPORT = "import"
    SYSTEM = "system"
    CORRECTION = "correction"


WIRE_FIELDS = frozenset(
    {
        "tenantId",
        "metric",
        "customerRef",
        "quantity",
        "ts",
        "resourceId",
        "meta",
        "idempotencyKey",
        "source",
    }
)


@dataclass(frozen=True, slots=True)
class EventLimits:
    """Bounds an event must respect; built from settings at the edge."""

    max_future: timedelta = DEFAULT_MAX_FUTURE
    max_meta_bytes: int = DEFAULT_MAX_META_BYTES


@dataclass(frozen=True, slots=True)
class UsageEvent:
    """A validated event, with its idempotency key and the hash of what it says."""

    metric: str
    customer_ref: str
    quantity: Decimal
    at: datetime
    at_text: str
    resource_id: str | None
    meta: dict[str, Any]
    meta_json: str
    source: Source
    idempotency_key: str
    payload_hash: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one event of a batch was refused: the field, a stable code and a sentence."""

    field: str
    code: str
    message: str


def parse_event(
    raw: object, *, tenant_id: str, now: datetime, limits: EventLimits, default_source: Source
) -> UsageEvent | Rejection:
    """Validate one wire event (camelCase dict) into a ``UsageEvent`` or the first ``Rejection``."""
    if not isinstance(raw, dict):
        return Rejection("", "invalid_type", "each event must be a JSON object")
    unknown = sorted(set(raw) - WIRE_FIELDS)
    if unknown:
        return Rejection(unknown[0], "unknown_field", f"unknown field {unknown[0]!r}")

    claimed_tenant = raw.get("tenantId")
    if claimed_tenant is not None and claimed_tenant != tenant_id:
        return Rejection(
            "tenantId", "tenant_mismatch", "tenantId does not match the API key's tenant"
        )

    metric = _required_text(raw, "metric", MAX_METRIC_LENGTH)
    if isinstance(metric, Rejection):
        return metric
    customer_ref = _required_text(raw, "customerRef", MAX_CUSTOMER_REF_LENGTH)
    if isinstance(customer_ref, Rejection):
        return customer_ref
    resource_id = _text(raw, "resourceId", MAX_RESOURCE_ID_LENGTH, required=False)
    if isinstance(resource_id, Rejection):
        return resource_id
    client_key = _text(raw, "idempotencyKey", MAX_IDEMPOTENCY_KEY_LENGTH, required=False)
    if isinstance(client_key, Rejection):
        return client_key

    source_raw = raw.get("source")
    if source_raw is None:
        source = default_source
    else:
        try:
            source = Source(source_raw)
        except ValueError:
            allowed = "|".join(s.value for s in Source)
            return Rejection("source", "invalid_enum", f"source must be one of {allowed}")

    if "quantity" not in raw:
        return Rejection("quantity", "required", "quantity is required")
    try:
        quantity = parse_quantity(raw["quantity"])
    except QuantityError as exc:
        return Rejection("quantity", "invalid_quantity", f"quantity {exc}")
    if quantity < 0 and source is not Source.CORRECTION:
        return Rejection(
            "quantity",
            "negative_quantity",
            "quantity must be zero or more; send negative values with source 'correction'",
        )

    if "ts" not in raw:
        return Rejection("ts", "required", "ts is required")
    try:
        when = parse_event_time(raw["ts"])
    except TimeError as exc:
        return Rejection("ts", "invalid_timestamp", f"ts {exc}")
    if when.at > now + limits.max_future:
        seconds = int(limits.max_future.total_seconds())
        return Rejection("ts", "timestamp_in_future", f"ts is more than {seconds} s in the future")

    meta = raw.get("meta")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        return Rejection("meta", "invalid_type", "meta must be a JSON object")
    meta_json = _canonical_json.encode(meta).decode()
    if len(meta_json.encode()) > limits.max_meta_bytes:
        return Rejection(
            "meta", "too_large", f"meta must be at most {limits.max_meta_bytes} bytes as JSON"
        )

    payload = _canonical_json.encode(
        [metric, customer_ref, resource_id or "", when.text, canonical(quantity), meta]
    )
    payload_hash = hashlib.sha256(payload).hexdigest()
    key = client_key or derive_key(tenant_id, payload)
    return UsageEvent(
        metric=metric,
        customer_ref=customer_ref,
        quantity=quantity,
        at=when.at,
        at_text=when.text,
        resource_id=resource_id,
        meta=meta,
        meta_json=meta_json,
        source=source,
        idempotency_key=key,
        payload_hash=payload_hash,
    )


def derive_key(tenant_id: str, canonical_payload: bytes) -> str:
    """The key of an event sent without one: a hash of the tenant and everything the event says.

    The payload is the canonical JSON array ``[metric, customerRef, resourceId or "", ts (UTC, full
    precision), quantity (canonical decimal), meta (sorted keys)]``.
    """
    digest = hashlib.sha256(tenant_id.encode() + b"\x1f" + canonical_payload).hexdigest()
    return f"evt_{digest[:32]}"


def _required_text(raw: dict[str, Any], name: str, limit: int) -> str | Rejection:
    value = _text(raw, name, limit, required=True)
    if value is None:  # _text reports a missing required field itself; this is for the type checker
        return Rejection(name, "required", f"{name} is required")
    return value


def _text(raw: dict[str, Any], name: str, limit: int, *, required: bool) -> str | Rejection | None:
    value = raw.get(name)
    if value is None:
        if required:
            return Rejection(name, "required", f"{name} is required")
        return None
    if not isinstance(value, str):
        return Rejection(name, "invalid_type", f"{name} must be a string")
    if not value.strip():
        return Rejection(name, "blank", f"{name} must not be blank")
    if len(value) > limit:
        return Rejection(name, "too_long", f"{name} must be at most {limit} characters")
    if _CONTROL.search(value):
        return Rejection(name, "invalid_characters", f"{name} must not contain control characters")
    return value
