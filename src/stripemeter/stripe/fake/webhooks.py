"""Signed webhook delivery: ``Stripe-Signature: t=...,v1=...``, HMAC-SHA256 of ``t.body``."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable

import httpx

from stripemeter.stripe.fake.types import JSONObject

SIGNATURE_TOLERANCE = 300  # seconds, Stripe's default for verifying a signature's age
DELIVERY_TIMEOUT = 10.0  # seconds before a webhook POST counts as failed


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """Return the ``Stripe-Signature`` header value for ``payload`` signed at ``timestamp``."""
    digest = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256
    ).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(payload: bytes, header: str, secret: str, *, now: int | None = None) -> bool:
    """Check a ``Stripe-Signature`` header: a matching v1 signature no older than the tolerance."""
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    timestamps = [v for k, v in parts if k == "t"]
    if len(timestamps) != 1 or not timestamps[0].isdigit():
        return False
    timestamp = int(timestamps[0])
    expected = sign(payload, secret, timestamp).split("v1=", 1)[1]
    matched = any(hmac.compare_digest(expected, v) for k, v in parts if k == "v1")
    current = int(time.time()) if now is None else now
    return matched and abs(current - timestamp) <= SIGNATURE_TOLERANCE


class WebhookDispatcher:
    """Delivers events in order, one POST each (more when a duplicate-delivery fault asks)."""

    def __init__(
        self, url: str | None, secret: str | None, duplicates: Callable[[JSONObject], int]
    ) -> None:
        self.url = url
        self.secret = secret or f"whsec_{secrets.token_urlsafe(24)}"
        self._duplicates = duplicates
        self.deliveries: list[JSONObject] = []
        self._queue: asyncio.Queue[JSONObject] | None = None
        self._worker: asyncio.Task[None] | None = None

    def enqueue(self, events: list[JSONObject]) -> None:
        """Queue events for delivery from the running event loop; no-op without a URL."""
        if not self.url or not events:
            return
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run(self._queue))
        for event in events:
            self._queue.put_nowait(event)

    async def _run(self, queue: asyncio.Queue[JSONObject]) -> None:
        async with httpx.AsyncClient(timeout=DELIVERY_TIMEOUT) as client:
            while True:
                event = await queue.get()
                for _ in range(1 + self._duplicates(event)):
                    await self._deliver(client, event)

    async def _deliver(self, client: httpx.AsyncClient, event: JSONObject) -> None:
        assert self.url is not None
        body = json.dumps(event).encode()
        # Signed with wall time, not the fake clock: receivers check it against their own clock.
        header = sign(body, self.secret, int(time.time()))
        record: JSONObject = {"event": event["id"], "type": event["type"], "url": self.url}
        try:
            response = await client.post(
                self.url,
                content=body,
                headers={"Content-Type": "application/json", "Stripe-Signature": header},
            )
            record["status"] = response.status_code
        except httpx.HTTPError as exc:
            record["error"] = repr(exc)
        self.deliveries.append(record)

    async def aclose(self) -> None:
        """Stop the delivery task."""
        if self._worker is not None:
            self._worker.cancel()
