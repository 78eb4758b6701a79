"""Stripe webhook signatures: ``Stripe-Signature: t=<unix>,v1=<hex>``, HMAC-SHA256 of ``t.body``."""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

SIGNATURE_TOLERANCE = 300  # seconds, Stripe's default


class SignatureProblem(enum.StrEnum):
    """Why a signature was refused."""

    MISSING = "missing_signature"
    MALFORMED = "malformed_signature"
    EXPIRED = "timestamp_outside_tolerance"
    MISMATCH = "no_matching_signature"
    UNCONFIGURED = "webhooks_not_configured"


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """The outcome: accepted (with the signing timestamp) or the problem."""

    problem: SignatureProblem | None
    timestamp: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the signature is valid."""
        return self.problem is None


def compute_signature(payload: bytes, secret: str, timestamp: int) -> str:
    """The hex v1 signature of ``payload`` at ``timestamp``."""
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    """A ``Stripe-Signature`` header value (what Stripe sends)."""
    return f"t={timestamp},v1={compute_signature(payload, secret, timestamp)}"


def check_signature(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    now: int,
    tolerance: int = SIGNATURE_TOLERANCE,
) -> SignatureCheck:
    """Verify against every secret (rotation) and every v1 entry, in constant time per compare."""
    if not secrets:
        return SignatureCheck(SignatureProblem.UNCONFIGURED)
    if not header:
        return SignatureCheck(SignatureProblem.MISSING)
    timestamps: list[str] = []
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            signatures.append(value)
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not signatures:
        return SignatureCheck(SignatureProblem.MALFORMED)
    timestamp = int(timestamps[0])
    matched = False
    for secret in secrets:
        expected = compute_signature(payload, secret, timestamp)
        for candidate in signatures:
            # Evaluate every pair: no early exit tells an attacker which secret matched.
            matched = hmac.compare_digest(expected, candidate) or matched
    if not matched:
        return SignatureCheck(SignatureProblem.MISMATCH, timestamp)
    if abs(now - timestamp) > tolerance:
        return SignatureCheck(SignatureProblem.EXPIRED, timestamp)
    return SignatureCheck(None, timestamp)
