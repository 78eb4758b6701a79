"""Customer widget tokens: what they claim, how they are signed, and the check of one.

A token is ``wt1.<payload>.<signature>``: the payload is base64url JSON of the claims, the signature
HMAC-SHA256 over ``wt1.<payload>`` with a key derived for this purpose only. It is read-only by
construction (the only scope it can carry is ``usage:read``) and names one customer of one tenant.
No I/O here: the key and ``now`` arrive as arguments.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from stripemeter.domain.errors import InvalidInput, StripeMeterError

TOKEN_PREFIX = "wt1"  # noqa: S105 - a format marker, not a secret
WIDGET_SCOPE = "usage:read"
DEFAULT_TTL = timedelta(minutes=15)
MIN_TTL = timedelta(seconds=30)
MAX_TTL = timedelta(hours=24)
MAX_CUSTOMER_REF_LENGTH = 255
MAX_TOKEN_LENGTH = 2048  # a token longer than any we mint is refused before any decoding


class WidgetTokenError(StripeMeterError):
    """A presented widget token cannot be used."""

    code = "invalid_widget_token"


class TokenMalformed(WidgetTokenError):
    """The token is not one of ours, or its signature does not match (tampered)."""

    code = "invalid_widget_token"


class TokenExpired(WidgetTokenError):
    """The token was genuine but its time is up."""

    code = "widget_token_expired"


@dataclass(frozen=True, slots=True)
class WidgetClaims:
    """Who a token lets the widget show, until when."""

    tenant_id: str
    customer_ref: str
    issued_at: datetime
    expires_at: datetime
    scope: str = WIDGET_SCOPE


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A key for one purpose, so a signature made for sessions never verifies as a widget token."""
    return hmac.new(secret, f"stripemeter:{purpose}".encode(), hashlib.sha256).digest()


def validate_ttl(seconds: object) -> timedelta:
    """A requested lifetime in whole seconds, within ``[MIN_TTL, MAX_TTL]``; None means the default."""
    if seconds is None:
        return DEFAULT_TTL
    low, high = int(MIN_TTL.total_seconds()), int(MAX_TTL.total_seconds())
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not low <= seconds <= high:
        raise InvalidInput(
            f"ttlSeconds must be a whole number from {low} to {high}",
            code="invalid_ttl",
            param="ttlSeconds",
        )
    return timedelta(seconds=seconds)


def validate_customer_ref(value: object) -> str:
    """A customer reference as events carry it: 1-255 characters, no control characters."""
    if (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > MAX_CUSTOMER_REF_LENGTH
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in value)
    ):
        raise InvalidInput(
            f"customerRef must be 1-{MAX_CUSTOMER_REF_LENGTH} printable characters",
            code="invalid_customer_ref",
            param="customerRef",
        )
    return value


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, signed_part: str) -> bytes:
    return hmac.new(key, signed_part.encode("ascii"), hashlib.sha256).digest()


def issue(key: bytes, tenant_id: str, customer_ref: str, now: datetime, ttl: timedelta) -> str:
    """A signed token for one customer of one tenant, valid for ``ttl`` from ``now``."""
    issued = int(now.timestamp())
    claims = {
        "v": 1,
        "t": tenant_id,
        "c": customer_ref,
        "iat": issued,
        "exp": issued + int(ttl.total_seconds()),
        "s": WIDGET_SCOPE,
    }
    payload = _b64encode(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signed_part = f"{TOKEN_PREFIX}.{payload}"
    return f"{signed_part}.{_b64encode(_signature(key, signed_part))}"


def verify(key: bytes, token: str, now: datetime) -> WidgetClaims:
    """The claims of a genuine, unexpired token; TokenMalformed or TokenExpired otherwise.

    The signature is compared in constant time before the payload is parsed, so nothing an
    attacker wrote is interpreted unless we signed it.
    """
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise TokenMalformed("this widget link is not valid")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise TokenMalformed("this widget link is not valid")
    signed_part = f"{parts[0]}.{parts[1]}"
    try:
        presented = _b64decode(parts[2])
    except (binascii.Error, ValueError):
        raise TokenMalformed("this widget link is not valid") from None
    if not hmac.compare_digest(presented, _signature(key, signed_part)):
        raise TokenMalformed("this widget link is not valid")
    try:
        claims = json.loads(_b64decode(parts[1]))
        tenant_id, customer_ref = claims["t"], claims["c"]
        issued, expires, scope = claims["iat"], claims["exp"], claims["s"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise TokenMalformed("this widget link is not valid") from None
    if (
        claims.get("v") != 1
        or scope != WIDGET_SCOPE
        or not isinstance(tenant_id, str)
        or not isinstance(customer_ref, str)
        or not isinstance(issued, int)
        or not isinstance(expires, int)
    ):
        raise TokenMalformed("this widget link is not valid")
    expires_at = datetime.fromtimestamp(expires, UTC)
    if now >= expires_at:
        raise TokenExpired("this widget link has expired; reload the page to get a new one")
    return WidgetClaims(tenant_id, customer_ref, datetime.fromtimestamp(issued, UTC), expires_at)
