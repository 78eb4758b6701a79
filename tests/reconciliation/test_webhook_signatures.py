"""Stripe-Signature checks at the webhook route: valid, wrong secret, expired, replayed, tampered."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from stripemeter.domain.webhook_signatures import (
    SignatureProblem,
    check_signature,
    signature_header,
)
from stripemeter.stripe.fake.webhooks import sign
from tests.fake_stripe.conftest import WEBHOOK_SECRET
from tests.reconciliation.conftest import OLD_SECRET


@pytest.fixture
def backend() -> str:
    """Signature handling does not depend on the database."""
    return "sqlite"


def _event(event_id: str = "evt_sig_1") -> bytes:
    return json.dumps(
        {"id": event_id, "type": "customer.updated", "created": 1, "data": {"object": {}}}
    ).encode()


async def _post(api: httpx.AsyncClient, body: bytes, header: str) -> httpx.Response:
    return await api.post("/v1/webhooks/stripe", content=body, headers={"Stripe-Signature": header})


async def test_valid_signature_is_accepted_once(api: httpx.AsyncClient) -> None:
    """A body signed by the fake's signer is recorded; the same delivery again is a duplicate."""
    body = _event()
    header = sign(body, WEBHOOK_SECRET, int(time.time()))
    first = await _post(api, body, header)
    assert first.status_code == 200
    assert first.json()["duplicate"] is False
    replay = await _post(api, body, header)
    assert replay.status_code == 200
    assert replay.json()["duplicate"] is True


async def test_rotated_out_secret_still_verifies(api: httpx.AsyncClient) -> None:
    """Every comma-separated secret is tried, so rotation needs no downtime."""
    body = _event("evt_sig_old")
    response = await _post(api, body, signature_header(body, OLD_SECRET, int(time.time())))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda b: sign(b, "whsec_wrong", int(time.time())), "no_matching_signature"),
        (lambda b: sign(b, WEBHOOK_SECRET, int(time.time()) - 301), "timestamp_outside_tolerance"),
        (lambda b: sign(b + b" ", WEBHOOK_SECRET, int(time.time())), "no_matching_signature"),
        (lambda b: "t=abc,v1=00", "malformed_signature"),
        (lambda b: "", "missing_signature"),
    ],
    ids=["wrong-secret", "expired", "tampered", "malformed", "missing"],
)
async def test_bad_signatures_are_refused(api: httpx.AsyncClient, make: object, code: str) -> None:
    """Wrong secret, a stale timestamp, a changed body or a broken header: 400 with the reason."""
    body = _event("evt_bad")
    response = await _post(api, body, make(body))  # type: ignore[operator]
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_replayed_old_delivery_is_expired() -> None:
    """A captured delivery re-sent after the tolerance fails even with the right secret."""
    body = _event()
    header = signature_header(body, WEBHOOK_SECRET, 1_000)
    check = check_signature(body, header, [WEBHOOK_SECRET], now=1_000 + 301)
    assert check.problem is SignatureProblem.EXPIRED
    assert check_signature(body, header, [WEBHOOK_SECRET], now=1_000 + 300).ok


def test_no_secret_configured_refuses() -> None:
    """Without STRIPE_WEBHOOK_SECRET nothing is trusted."""
    assert check_signature(b"{}", "t=1,v1=0", [], now=1).problem is SignatureProblem.UNCONFIGURED
