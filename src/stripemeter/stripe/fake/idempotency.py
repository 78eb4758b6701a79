"""``Idempotency-Key`` handling: same request replays for 24 h; other params are refused."""

from __future__ import annotations

import hashlib
import json

from stripemeter.stripe.fake.errors import idempotency_mismatch
from stripemeter.stripe.fake.state import FakeStripeState
from stripemeter.stripe.fake.types import JSONObject

KEY_LIFETIME = 86400  # seconds a key is remembered


def fingerprint(method: str, path: str, params: JSONObject) -> str:
    """Return a stable digest of a request's method, path and decoded parameters."""
    canonical = json.dumps([method.upper(), path, params], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def lookup(
    state: FakeStripeState, scope: str, key: str, digest: str, now: int
) -> JSONObject | None:
    """Return the saved response for a replay, None for a fresh key; raise on a params mismatch."""
    saved = state.idempotency.get(f"{scope}:{key}")
    if saved is None or now - saved["created"] >= KEY_LIFETIME:
        return None
    if saved["fingerprint"] != digest:
        raise idempotency_mismatch(key)
    return saved


def remember(
    state: FakeStripeState, scope: str, key: str, digest: str, now: int, status: int, body: bytes
) -> None:
    """Save a response under its key."""
    state.idempotency[f"{scope}:{key}"] = {
        "fingerprint": digest,
        "created": now,
        "status": status,
        "body": body.decode(),
    }
