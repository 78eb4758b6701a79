"""v2 meter events: sessions with expiring tokens, the batch stream, single synchronous events."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from stripemeter.stripe.fake.context import RequestContext
from stripemeter.stripe.fake.errors import (
    StripeError,
    authentication_error,
    invalid_request,
    session_expired,
)
from stripemeter.stripe.fake.meters import record_meter_event
from stripemeter.stripe.fake.state import new_id
from stripemeter.stripe.fake.types import JSONObject

SESSION_LIFETIME = 15 * 60  # seconds a meter event session token stays valid

_V2_CODES = {
    "meter_event_no_customer_defined": "payload_no_customer_defined",
    "meter_event_value_not_found": "payload_no_value_defined",
    "parameter_invalid_decimal": "payload_invalid_value",
}


def rfc3339(timestamp: int) -> str:
    """Render Unix seconds as v2's RFC 3339 UTC string."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_rfc3339(value: str, param: str) -> int:
    """Parse an RFC 3339 timestamp with a zone into Unix seconds."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise invalid_request(f"Invalid timestamp: {value}", param=param) from exc
    if parsed.tzinfo is None:
        raise invalid_request(f"Invalid timestamp: {value} has no time zone", param=param)
    return int(parsed.timestamp())


def create_session(ctx: RequestContext) -> JSONObject:
    """Open a meter event session whose token expires after 15 minutes (fake clock)."""
    token = f"mbses_{'live' if ctx.livemode else 'test'}_{secrets.token_urlsafe(24)}"
    expires_at = ctx.now + SESSION_LIFETIME
    ctx.state.sessions[token] = {"expires_at": expires_at, "livemode": ctx.livemode}
    return {
        "id": new_id("mtrses"),
        "object": "v2.billing.meter_event_session",
        "authentication_token": token,
        "created": rfc3339(ctx.now),
        "expires_at": rfc3339(expires_at),
        "livemode": ctx.livemode,
    }


def session_mode(ctx: RequestContext, token: str | None) -> bool:
    """Return the livemode of a valid session token; raise Stripe's 401 otherwise."""
    session = ctx.state.sessions.get(token or "")
    if session is None:
        raise authentication_error("Invalid or missing meter event session token.")
    if ctx.now >= session["expires_at"]:
        raise session_expired()
    return bool(session["livemode"])


def _record(ctx: RequestContext, event: JSONObject, path: str) -> JSONObject:
    timestamp = event.get("timestamp")
    try:
        stored = record_meter_event(
            ctx,
            event["event_name"],
            event["payload"],
            event.get("identifier"),
            parse_rfc3339(timestamp, f"{path}timestamp") if timestamp else None,
            v2=True,
        )
    except StripeError as exc:
        exc.code = _V2_CODES.get(exc.code or "", exc.code)
        raise
    return {
        "object": "v2.billing.meter_event",
        "created": rfc3339(stored["created"]),
        "event_name": stored["event_name"],
        "identifier": stored["identifier"],
        "livemode": stored["livemode"],
        "payload": stored["payload"],
        "timestamp": rfc3339(stored["timestamp"]),
    }


def create_meter_event(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """Validate one event synchronously and store it."""
    return _record(ctx, params, "")


def stream_events(ctx: RequestContext, params: JSONObject) -> JSONObject:
    """Accept up to 100 events; per-event problems are reported asynchronously, as Stripe does."""
    for index, event in enumerate(params["events"]):
        try:
            _record(ctx, event, f"events[{index}].")
        except StripeError as exc:
            ctx.state.stream_errors.append(
                {"index": index, "identifier": event.get("identifier"), "at": ctx.now}
                | exc.body()["error"]
            )
    return {}
