"""Fixtures: the app wired to the fake Stripe over HTTP, webhooks relayed from the fake to the app."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from stripemeter.config import Settings
from tests.fake_stripe.conftest import WEBHOOK_SECRET, WebhookReceiver
from tests.stripe_sync.conftest import (
    TEST_KEY,
    FakeStripe,
    fake,
    fake_url,
    receiver,
    sync_settings,
)

__all__ = ["fake", "fake_url", "receiver"]

OLD_SECRET = "whsec_rotated_out"


@pytest.fixture
def settings(database_url: str, fake_url: str, fake: FakeStripe, tmp_path: Path) -> Settings:
    """The fake Stripe, two webhook secrets (rotation), no background loops, no recheck wait."""
    return sync_settings(
        database_url,
        fake_url,
        backfill_dir=str(tmp_path),
        stripe_webhook_secret=SecretStr(f"{OLD_SECRET},{WEBHOOK_SECRET}"),
        reconcile_recheck_seconds=0.0,
        reconcile_enabled=False,
        # Test clocks exist in test mode only: our "live" account is the fake's test mode.
        stripe_secret_key=SecretStr(TEST_KEY),
        stripe_test_secret_key=None,
    )


async def relay(
    api: httpx.AsyncClient, receiver: WebhookReceiver, start: int, *, wait_for: int = 0
) -> list[dict[str, Any]]:
    """Forward the webhooks the fake delivered since ``start`` to the app, bytes and signature as sent."""
    await asyncio.to_thread(receiver.wait_for, start + wait_for)
    answers = []
    for body, headers in list(receiver.received)[start:]:
        response = await api.post(
            "/v1/webhooks/stripe",
            content=body,
            headers={
                "Stripe-Signature": headers["Stripe-Signature"],
                "Content-Type": "application/json",
            },
        )
        assert response.status_code == 200, response.text
        answers.append({"type": json.loads(body)["type"], **response.json()})
    return answers
