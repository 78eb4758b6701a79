"""Replay (`POST /v1/replay`): recompute counters from the ledger, report differences, repair."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from stripemeter.api import schemas
from stripemeter.api.auth import require
from stripemeter.api.deps import request_id_of, services_of
from stripemeter.api.json import JSON
from stripemeter.api.routes._body import actor_of, read_optional_object, reject_unknown
from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.events import MAX_CUSTOMER_REF_LENGTH, MAX_METRIC_LENGTH
from stripemeter.domain.scopes import Scope
from stripemeter.services.keys import Principal
from stripemeter.services.replay import ReplayScope, ReplayService, report_to_wire, resolve_instant

router = APIRouter(tags=["replay"])

MODES = ("dry-run", "apply")


class ReplayIn(BaseModel):
    """What to recompute; every field is optional (the default is a dry run of every counter)."""

    model_config = ConfigDict(extra="forbid")

    metrics: list[str] | None = Field(None, description="Only these metrics.")
    customerRef: str | None = Field(None, description="Only this customer.")
    since: str | None = Field(
        None,
        description="RFC 3339, 'now' or a duration before now such as -PT24H; periods overlapping "
        "[since, until) are recomputed whole.",
    )
    until: str | None = Field(None, description="Same forms as since; exclusive.")
    mode: Literal["dry-run", "apply"] | None = Field(
        None, description="dry-run (default) or apply."
    )
    dryRun: bool | None = Field(None, description="The original product's form of mode.")
    tenantId: str | None = Field(None, description="If present, must be the API key's tenant.")


def parse_request(body: dict[str, Any] | None, now: datetime) -> tuple[ReplayScope, bool]:
    """(scope, apply) from a replay body, in the current or the original product's form."""
    body = body or {}
    reject_unknown(body, {"metrics", "customerRef", "since", "until", "mode", "dryRun"})
    metrics = body.get("metrics")
    if metrics is not None and (
        not isinstance(metrics, list)
        or not all(isinstance(m, str) and 0 < len(m) <= MAX_METRIC_LENGTH for m in metrics)
    ):
        raise InvalidInput(
            f"metrics must be a list of metric names (1-{MAX_METRIC_LENGTH} characters)",
            code="invalid_metrics",
            param="metrics",
        )
    customer = body.get("customerRef")
    if customer is not None and (
        not isinstance(customer, str) or not 0 < len(customer) <= MAX_CUSTOMER_REF_LENGTH
    ):
        raise InvalidInput(
            f"customerRef must be a string of 1-{MAX_CUSTOMER_REF_LENGTH} characters",
            code="invalid_customer_ref",
            param="customerRef",
        )
    times: dict[str, datetime | None] = {}
    for name in ("since", "until"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"{name} must be a string", code="invalid_time", param=name)
        times[name] = resolve_instant(value, now, name)
    mode = body.get("mode")
    if mode is not None and mode not in MODES:
        raise InvalidInput("mode must be dry-run or apply", code="invalid_mode", param="mode")
    dry_run = body.get("dryRun")
    if dry_run is not None and not isinstance(dry_run, bool):
        raise InvalidInput("dryRun must be true or false", code="invalid_mode", param="dryRun")
    if mode is not None and dry_run is not None and (mode == "dry-run") != dry_run:
        raise InvalidInput(
            "mode and dryRun disagree; send one of them", code="conflicting_mode", param="dryRun"
        )
    apply = mode == "apply" or dry_run is False
    scope = ReplayScope(
        metrics=tuple(dict.fromkeys(metrics)) if metrics else None,
        customer_ref=customer,
        since=times["since"],
        until=times["until"],
    )
    return scope, apply


@router.post(
    "/v1/replay",
    summary="Recompute counters from the ledger",
    description="Scope `admin`. A dry run reports every counter that differs from its recomputation "
    "(accepted events plus approved adjustments); `apply` also repairs them, a chunk of counters per "
    'transaction, and records each repair in the audit log. Accepts `{"tenantId", "dryRun"}` too.',
    openapi_extra={"requestBody": {**schemas.request_body(ReplayIn), "required": False}},
    responses=schemas.ERRORS,
)
async def replay(
    request: Request, principal: Principal = Depends(require(Scope.ADMIN))
) -> Response:
    """Check (and on apply repair) every counter in scope."""
    scope, apply = parse_request(await read_optional_object(request, principal), datetime.now(UTC))
    report = await ReplayService(services_of(request).db).run(
        principal.tenant_id,
        scope,
        apply=apply,
        actor=actor_of(principal),
        request_id=request_id_of(request),
    )
    return JSON(report_to_wire(report))
