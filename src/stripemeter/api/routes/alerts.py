"""Alerts (`/v1/alerts`): rules, states per customer, acknowledge/snooze, history, deliveries."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.responses import Response

from stripemeter.api.auth import require
from stripemeter.api.deps import services_of
from stripemeter.api.json import JSON
from stripemeter.api.routes._body import actor_of, read_object, read_optional_object, reject_unknown
from stripemeter.api.schemas import ERRORS
from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.scopes import Scope
from stripemeter.services.alert_rules import rule_to_wire
from stripemeter.services.alerts import AlertService
from stripemeter.services.keys import Principal
from stripemeter.services.read_params import parse_instant

router = APIRouter(prefix="/v1/alerts", tags=["alerts"], responses=ERRORS)

MAX_ID = 2**63 - 1  # ids are 64-bit; larger numbers are refused, not overflowed
_read = require(Scope.USAGE_READ)
_write = require(Scope.MAPPINGS_WRITE)


def _alerts(request: Request) -> AlertService:
    return services_of(request).alerts


def _note(body: dict[str, object]) -> str | None:
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 2000):
        raise InvalidInput("note must be a string of at most 2000 characters",
                           code="invalid_parameter", param="note")  # fmt: skip
    return note


@router.get("", summary="List alert rules")
async def list_rules(request: Request, principal: Principal = Depends(_read)) -> Response:
    """The tenant's rules, oldest first (webhook secrets are never shown)."""
    rules = await _alerts(request).rules.list(principal.tenant_id)
    return JSON({"data": [rule_to_wire(r) for r in rules]})


@router.post("", status_code=201, summary="Create an alert rule")
async def create_rule(request: Request, principal: Principal = Depends(_write)) -> Response:
    """A rule; a webhook channel without ``secret`` gets one, shown in this response only."""
    body = await read_object(request, principal)
    return JSON(await _alerts(request).rules.create(principal.tenant_id, body), status_code=201)


@router.get("/states", summary="Alert states per rule, customer and metric")
async def list_states(
    request: Request,
    status: str | None = Query(None, pattern="^(triggered|acknowledged|resolved)$"),
    rule_id: str | None = Query(None, alias="ruleId", max_length=40),
    customer_ref: str | None = Query(None, alias="customerRef", max_length=255),
    metric: str | None = Query(None, max_length=100),
    limit: int = Query(100, ge=1, le=1000),
    cursor: int | None = Query(None, ge=1, le=MAX_ID),
    principal: Principal = Depends(_read),
) -> Response:
    """Newest first; a (rule, customer, metric) without a row has never fired (``ok``)."""
    data, next_cursor = await _alerts(request).list_states(
        principal.tenant_id,
        status=status,
        rule_id=rule_id,
        customer_ref=customer_ref,
        metric=metric,
        cursor=cursor,
        limit=limit,
    )
    return JSON({"data": data, "nextCursor": next_cursor})


@router.get("/states/{state_id}", summary="One alert state")
async def get_state(
    request: Request, state_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(_read)
) -> Response:
    """One of the tenant's states; another tenant's is 404."""
    return JSON(await _alerts(request).get_state(principal.tenant_id, state_id))


@router.post("/states/{state_id}/acknowledge", summary="Acknowledge a triggered alert")
async def acknowledge(
    request: Request, state_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(_write)
) -> Response:
    """``{note?}``: stops re-notification until the alert escalates or resolves."""
    body = await read_optional_object(request, principal) or {}
    reject_unknown(body, {"note"})
    state = await _alerts(request).acknowledge(
        principal.tenant_id, state_id, actor_of(principal), _note(body)
    )
    return JSON(state)


@router.post("/states/{state_id}/snooze", summary="Snooze an alert's notifications")
async def snooze_state(
    request: Request, state_id: int = Path(ge=1, le=MAX_ID), principal: Principal = Depends(_write)
) -> Response:
    """``{until | seconds, note?}``; ``{"until": null}`` lifts the snooze."""
    body = await read_object(request, principal)
    reject_unknown(body, {"until", "seconds", "note"})
    alerts = _alerts(request)
    until: datetime | None
    if "seconds" in body:
        seconds = body["seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
            raise InvalidInput("seconds must be a positive whole number",
                               code="invalid_parameter", param="seconds")  # fmt: skip
        until = alerts.clock() + timedelta(seconds=seconds)
    elif "until" in body:
        raw = body["until"]
        if raw is not None and not isinstance(raw, str):
            raise InvalidInput("until must be an RFC 3339 time or null",
                               code="invalid_parameter", param="until")  # fmt: skip
        until = parse_instant(raw, "until") if raw is not None else None
    else:
        raise InvalidInput("give until or seconds", code="missing_parameter", param="until")
    state = await alerts.snooze(
        principal.tenant_id, state_id, actor_of(principal), until, _note(body)
    )
    return JSON(state)


@router.get("/events", summary="Alert history")
@router.get("/history", summary="Alert history", include_in_schema=False)
async def list_events(
    request: Request,
    rule_id: str | None = Query(None, alias="ruleId", max_length=40),
    state_id: int | None = Query(None, alias="stateId", ge=1, le=MAX_ID),
    customer_ref: str | None = Query(None, alias="customerRef", max_length=255),
    transition: str | None = Query(None, max_length=16),
    since: str | None = Query(None, alias="from"),
    until: str | None = Query(None, alias="to"),
    limit: int = Query(100, ge=1, le=1000),
    cursor: int | None = Query(None, ge=1, le=MAX_ID),
    principal: Principal = Depends(_read),
) -> Response:
    """Every transition with the value and threshold at the time, newest first; ``[from, to)``."""
    data, next_cursor = await _alerts(request).list_events(
        principal.tenant_id,
        cursor=cursor,
        limit=limit,
        rule_id=rule_id,
        state_id=state_id,
        customer_ref=customer_ref,
        kind=transition,
        since=parse_instant(since, "from") if since is not None else None,
        until=parse_instant(until, "to") if until is not None else None,
    )
    return JSON({"data": data, "nextCursor": next_cursor})


@router.get("/deliveries", summary="Notification deliveries")
async def list_deliveries(
    request: Request,
    status: str | None = Query(None, pattern="^(pending|delivered|failed)$"),
    event_id: int | None = Query(None, alias="eventId", ge=1, le=MAX_ID),
    limit: int = Query(100, ge=1, le=1000),
    cursor: int | None = Query(None, ge=1, le=MAX_ID),
    principal: Principal = Depends(_read),
) -> Response:
    """Each notification per channel: status, attempts, last error; newest first."""
    data, next_cursor = await _alerts(request).list_deliveries(
        principal.tenant_id, status=status, event_id=event_id, cursor=cursor, limit=limit
    )
    return JSON({"data": data, "nextCursor": next_cursor})


@router.post("/deliveries/{delivery_id}/retry", summary="Retry a failed delivery")
async def retry_delivery(
    request: Request,
    delivery_id: int = Path(ge=1, le=MAX_ID),
    principal: Principal = Depends(_write),
) -> Response:
    """Put a failed delivery back in the queue with a fresh attempt budget."""
    return JSON(await _alerts(request).retry_delivery(principal.tenant_id, delivery_id))


@router.post("/evaluate", summary="Evaluate the tenant's rules now")
async def evaluate(request: Request, principal: Principal = Depends(_write)) -> Response:
    """Runs one evaluation and reports the transitions it made."""
    summary = await _alerts(request).evaluate(principal.tenant_id)
    return JSON(
        {
            "rules": summary.rules,
            "readings": summary.readings,
            "transitions": [{"ruleType": t, "transition": k} for t, k in summary.transitions],
            "notifications": summary.notifications,
        }
    )


@router.get("/{rule_id}", summary="Read an alert rule")
async def get_rule(
    rule_id: str, request: Request, principal: Principal = Depends(_read)
) -> Response:
    """One rule of the tenant; another tenant's is 404."""
    return JSON(rule_to_wire(await _alerts(request).rules.get(principal.tenant_id, rule_id)))


@router.patch("/{rule_id}", summary="Change an alert rule")
@router.put("/{rule_id}", summary="Change an alert rule", include_in_schema=False)
async def update_rule(
    rule_id: str, request: Request, principal: Principal = Depends(_write)
) -> Response:
    """The fields given are changed (``false`` and ``0`` included); the result is validated whole."""
    body = await read_object(request, principal)
    return JSON(await _alerts(request).rules.update(principal.tenant_id, rule_id, body))


@router.delete("/{rule_id}", status_code=204, summary="Delete an alert rule")
async def delete_rule(
    rule_id: str, request: Request, principal: Principal = Depends(_write)
) -> Response:
    """Removes the rule and its states; the history stays."""
    await _alerts(request).rules.delete(principal.tenant_id, rule_id)
    return Response(status_code=204)
