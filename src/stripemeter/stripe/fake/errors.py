"""Stripe-shaped errors: what the fake raises and how it renders them."""

from __future__ import annotations

from dataclasses import dataclass, field

from stripemeter.stripe.fake.types import JSONObject


@dataclass
class StripeError(Exception):
    """An error the fake answers with, in Stripe's envelope and status code."""

    status: int
    type: str
    message: str
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> JSONObject:
        """Return the JSON body Stripe sends for this error."""
        error: JSONObject = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
        if self.param is not None:
            error["param"] = self.param
        return {"error": error}


def invalid_request(
    message: str, *, param: str | None = None, code: str | None = None, status: int = 400
) -> StripeError:
    """Build an ``invalid_request_error`` (400 unless told otherwise)."""
    return StripeError(status, "invalid_request_error", message, code=code, param=param)


def missing_param(param: str) -> StripeError:
    """Build Stripe's error for a required parameter that was not sent."""
    return invalid_request(
        f"Missing required param: {param}.", param=param, code="parameter_missing"
    )


def unknown_param(param: str) -> StripeError:
    """Build Stripe's error for a parameter the endpoint does not accept."""
    return invalid_request(
        f"Received unknown parameter: {param}", param=param, code="parameter_unknown"
    )


def no_such(kind: str, object_id: str, *, param: str = "id") -> StripeError:
    """Build Stripe's 404 for an object that does not exist (in this mode)."""
    return invalid_request(
        f"No such {kind}: '{object_id}'", param=param, code="resource_missing", status=404
    )


def authentication_error(message: str) -> StripeError:
    """Build Stripe's 401 for a missing or malformed API key."""
    return StripeError(401, "invalid_request_error", message)


def idempotency_mismatch(key: str) -> StripeError:
    """Build Stripe's error for an idempotency key reused with other parameters."""
    return StripeError(
        400,
        "idempotency_error",
        "Keys for idempotent requests can only be used with the same parameters they were "
        f"first used with. Try using a key other than '{key}' if you meant to execute a "
        "different request.",
    )


def session_expired() -> StripeError:
    """Build the v2 error for a meter event session whose token has expired."""
    return StripeError(
        401,
        "temporary_session_expired",
        "The meter event session has expired; create a new session.",
        code="billing_meter_event_session_expired",
    )
