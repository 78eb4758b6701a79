"""Wire models for the OpenAPI document (hot routes parse with msgspec; these describe them)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

# Exact decimals travel as JSON numbers (see api/json.py); pydantic would document them as strings.
Number = Annotated[Decimal, WithJsonSchema({"type": "number"})]


class _Wire(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class EventIn(_Wire):
    """One usage event as sent by applications."""

    metric: str = Field(min_length=1, max_length=100, examples=["api_calls"])
    customerRef: str = Field(min_length=1, max_length=255, examples=["cus_ABC123"])
    quantity: Number = Field(
        description="Finite decimal, at most 12 fraction digits; negative only with source=correction."
    )
    ts: datetime = Field(description="RFC 3339 with an offset; at most 5 minutes in the future.")
    resourceId: str | None = Field(None, max_length=255)
    meta: dict[str, Any] | None = Field(None, description="JSON object, at most 4 KiB.")
    idempotencyKey: str | None = Field(
        None,
        max_length=255,
        description="Unique per tenant forever. Default: a hash of the whole event.",
    )
    source: Literal["sdk", "http", "etl", "import", "system", "correction"] | None = None
    tenantId: str | None = Field(None, description="If present, must be the API key's tenant.")


class IngestRequest(_Wire):
    """A batch of events."""

    events: list[EventIn] = Field(min_length=1, max_length=1000)
    tenantId: str | None = None


class EventError(BaseModel):
    """Why one event was rejected."""

    field: str
    code: str
    message: str


class EventResult(BaseModel):
    """The outcome for one event, at its index in the request."""

    index: int
    status: Literal["accepted", "duplicate", "conflict", "held", "rejected"]
    idempotencyKey: str | None = None
    eventId: int | None = None
    reason: str | None = Field(None, examples=["beyond_lateness_window", "idempotency_key_reused"])
    error: EventError | None = None


class IngestResponse(BaseModel):
    """Totals per status and a result per event, in input order."""

    accepted: int
    duplicates: int
    conflicts: int
    held: int
    rejected: int
    requestId: str | None
    results: list[EventResult]


class ErrorBody(BaseModel):
    """The error envelope's contents."""

    type: str
    code: str
    message: str
    param: str | None = None
    details: Any = None


class ErrorEnvelope(BaseModel):
    """Every error response has this shape."""

    error: ErrorBody


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": text}
    for status, text in [
        (400, "Invalid request"),
        (401, "Missing or invalid API key"),
        (403, "Missing scope or another tenant"),
        (404, "Not found"),
        (409, "Idempotency conflict"),
        (413, "Body too large"),
    ]
}


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """An OpenAPI requestBody for a model, with nested definitions inlined."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {"required": True, "content": {"application/json": {"schema": inline(schema)}}}
