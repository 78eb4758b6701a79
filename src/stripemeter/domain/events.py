"""Usage events: validation of one wire event into a value, or a precise rejection."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from hashlib import sha256
from typing import Any, TypeGuard

import msgspec

from stripemeter.domain.quantities import QuantityError, canonical, parse_quantity
from stripemeter.domain.times import EventTime, TimeError, parse_event_time

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


class UsageEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A validated event, with its idempotency key and the hash of what it says."""

    # A Struct rather than a frozen dataclass: ingest builds one per event, and a Struct's
    # constructor is C (a frozen dataclass sets each field through object.__setattr__).

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
    # Ingest runs this for every event, so the common case is kept to C-level checks and caches;
    # anything unusual goes through ``_text`` and friends, which say precisely what is wrong.
    if not isinstance(raw, dict):
        return Rejection("", "invalid_type", "each event must be a JSON object")
    if not WIRE_FIELDS.issuperset(raw):
        unknown = sorted(set(raw) - WIRE_FIELDS)[0]
        return Rejection(unknown, "unknown_field", f"unknown field {unknown!r}")
    get = raw.get

    claimed_tenant = get("tenantId")
    if claimed_tenant is not None and claimed_tenant != tenant_id:
        return Rejection(
            "tenantId", "tenant_mismatch", "tenantId does not match the API key's tenant"
        )

    metric = get("metric")
    if not _plain_text(metric, MAX_METRIC_LENGTH):
        return _text_rejection(raw, "metric", MAX_METRIC_LENGTH)
    customer_ref = get("customerRef")
    if not _plain_text(customer_ref, MAX_CUSTOMER_REF_LENGTH):
        return _text_rejection(raw, "customerRef", MAX_CUSTOMER_REF_LENGTH)
    resource_id = get("resourceId")
    if resource_id is not None and not _plain_text(resource_id, MAX_RESOURCE_ID_LENGTH):
        return _text_rejection(raw, "resourceId", MAX_RESOURCE_ID_LENGTH)
    client_key = get("idempotencyKey")
    if client_key is not None and not _plain_text(client_key, MAX_IDEMPOTENCY_KEY_LENGTH):
        return _text_rejection(raw, "idempotencyKey", MAX_IDEMPOTENCY_KEY_LENGTH)

    source_raw = get("source")
    if source_raw is None:
        source = default_source
    else:
        found = _SOURCES.get(source_raw) if isinstance(source_raw, str) else None
        if found is None:
            allowed = "|".join(s.value for s in Source)
            return Rejection("source", "invalid_enum", f"source must be one of {allowed}")
        source = found

    if "quantity" not in raw:
        return Rejection("quantity", "required", "quantity is required")
    try:
        quantity, quantity_text = _quantity(raw["quantity"])
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
        when = _event_time(raw["ts"])
    except TimeError as exc:
        return Rejection("ts", "invalid_timestamp", f"ts {exc}")
    if when.at > now + limits.max_future:
        seconds = int(limits.max_future.total_seconds())
        return Rejection("ts", "timestamp_in_future", f"ts is more than {seconds} s in the future")

    meta = get("meta")
    if not meta:  # absent, null or {}
        if meta is not None and not isinstance(meta, dict):
            return Rejection("meta", "invalid_type", "meta must be a JSON object")
        meta, meta_json = {}, "{}"
    else:
        if not isinstance(meta, dict):
            return Rejection("meta", "invalid_type", "meta must be a JSON object")
        meta_json = _canonical_json.encode(meta).decode()
        if len(meta_json.encode()) > limits.max_meta_bytes:
            return Rejection(
                "meta", "too_large", f"meta must be at most {limits.max_meta_bytes} bytes as JSON"
            )

    payload = _canonical_json.encode(
        [metric, customer_ref, resource_id or "", when.text, quantity_text, meta]
    )
    payload_hash = sha256(payload).hexdigest()
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


_SOURCES: dict[str, Source] = {s.value: s for s in Source}


def _plain_text(value: object, limit: int) -> TypeGuard[str]:
    """A string that ``_text`` would accept as it is (the common case, checked in C)."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= limit
        and not value.isspace()
        # A printable string has no control characters; isprintable is the cheaper test, and
        # the pattern decides for the rest (other non-printable characters are allowed).
        and (value.isprintable() or _CONTROL.search(value) is None)
    )


@lru_cache(maxsize=4096)
def _quantity_text(text: str) -> tuple[Decimal, str]:
    # Pure, and a stream repeats few distinct quantity texts: parse each once.
    number = parse_quantity(text)
    return number, canonical(number)


def _quantity(value: object) -> tuple[Decimal, str]:
    if type(value) is str:
        return _quantity_text(value)
    number = parse_quantity(value)
    return number, canonical(number)


def _event_time(value: object) -> EventTime:
    if type(value) is str:
        return _event_time_text(value)
    return parse_event_time(value)  # raises the precise error


# Events of a batch mostly share a handful of timestamps (the same second, or the same minute).
_event_time_text = lru_cache(maxsize=4096)(parse_event_time)


def derive_key(tenant_id: str, canonical_payload: bytes) -> str:
    """The key of an event sent without one: a hash of the tenant and everything the event says.

    The payload is the canonical JSON array ``[metric, customerRef, resourceId or "", ts (UTC, full
    precision), quantity (canonical decimal), meta (sorted keys)]``.
    """
    digest = sha256(tenant_id.encode() + b"\x1f" + canonical_payload).hexdigest()
    return f"evt_{digest[:32]}"


def _text_rejection(raw: dict[str, Any], name: str, limit: int) -> Rejection:
    """What is wrong with a text field that failed ``_plain_text``."""
    value = raw.get(name)
    if value is None:
        return Rejection(name, "required", f"{name} is required")
    if not isinstance(value, str):
        return Rejection(name, "invalid_type", f"{name} must be a string")
    if not value.strip():
        return Rejection(name, "blank", f"{name} must not be blank")
    if len(value) > limit:
        return Rejection(name, "too_long", f"{name} must be at most {limit} characters")
    return Rejection(name, "invalid_characters", f"{name} must not contain control characters")
