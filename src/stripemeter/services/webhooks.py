"""Stripe webhooks in: verify, record durably, answer at once, handle each event id once.

A delivery is verified (signature over the raw body, several secrets, 300 s tolerance), then its
event is inserted by Stripe's event id before the answer goes out: a second delivery of the same
id (Stripe retries, or a replayed request) finds the row and does nothing. Handling happens after
the response, in a background task; events whose task died with the process are picked up by the
recovery loop (leases make that safe in many processes).

Tenancy: an event belongs to the tenants that mapped its Stripe customer (``customer_mappings``);
``/v1/webhooks/stripe/{tenantId}`` restricts it to one tenant for deployments where several tenants
share a Stripe account's customers. Price events are tenant-free (they invalidate a price cache).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.webhook_signatures import SignatureProblem, check_signature
from stripemeter.observability import metrics
from stripemeter.services.invoice_gate import InvoiceGate
from stripemeter.store import webhook_events
from stripemeter.store.database import Database

log = structlog.get_logger("stripemeter.webhooks")

RECOVERY_INTERVAL = 30.0  # seconds between sweeps for unhandled events and held invoices
RECOVERY_AGE = timedelta(seconds=60)  # an event this old and unhandled lost its task
LEASE = timedelta(minutes=5)


def utcnow() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a delivery got: recorded (new) or a duplicate of an event already received."""

    event_id: str
    event_type: str
    duplicate: bool


class WebhookInbox:
    """Receives and handles Stripe events."""

    def __init__(
        self,
        db: Database,
        gate: InvoiceGate,
        secrets_: list[str],
        *,
        clock: Callable[[], datetime] = utcnow,
        recovery_interval: float = RECOVERY_INTERVAL,
    ) -> None:
        self.db = db
        self.gate = gate
        self.secrets = secrets_
        self.clock = clock
        self.recovery_interval = recovery_interval
        self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    async def receive(self, body: bytes, signature: str | None, tenant_hint: str | None) -> Receipt:
        """Verify and record a delivery; handling is scheduled, not awaited."""
        check = check_signature(body, signature, self.secrets, now=int(self.clock().timestamp()))
        if not check.ok:
            metrics.webhook_events.labels("rejected").inc()
            assert check.problem is not None
            if check.problem is SignatureProblem.UNCONFIGURED:
                raise InvalidInput(
                    "webhooks are not configured: set STRIPE_WEBHOOK_SECRET",
                    code="webhooks_not_configured",
                )
            raise InvalidInput(
                f"the Stripe-Signature header was refused: {check.problem.value}",
                code=check.problem.value,
            )
        try:
            event = json.loads(body)
        except ValueError:
            raise InvalidInput("the body is not JSON", code="invalid_json") from None
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            raise InvalidInput("the body is not a Stripe event", code="invalid_event")
        event_type = str(event.get("type", ""))
        async with self.db.write() as conn:
            new = await webhook_events.record(
                conn,
                event_id=event["id"],
                event_type=event_type,
                tenant_hint=tenant_hint,
                livemode=bool(event.get("livemode", False)),
                created=event.get("created") if isinstance(event.get("created"), int) else None,
                payload=body.decode(),
                now=self.clock(),
            )
        metrics.webhook_events.labels("accepted" if new else "duplicate").inc()
        if new:
            self.schedule(event["id"])
        return Receipt(event["id"], event_type, not new)

    def schedule(self, event_id: str) -> None:
        """Handle an event in the background."""
        task = asyncio.create_task(self.process(event_id), name=f"webhook-{event_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for every scheduled handling task (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def process(self, event_id: str) -> str | None:
        """Handle one recorded event once (claim, act, record the outcome)."""
        async with self.db.write() as conn:
            row = await webhook_events.claim(conn, event_id, self.owner, self.clock(), LEASE)
        if row is None:
            return None
        event = json.loads(row["payload"])
        try:
            status = await self.gate.handle(event, row["tenant_hint"])
            error = None
        except Exception as exc:
            log.exception("webhook_failed", event=event_id, type=row["type"])
            status, error = "failed", repr(exc)[:1000]
        async with self.db.write() as conn:
            await webhook_events.finish(
                conn, event_id, status=status, error=error, now=self.clock()
            )
        metrics.webhook_events.labels("handled" if status != "failed" else "failed").inc()
        return status

    # --- recovery ----------------------------------------------------------------------------

    def start(self) -> None:
        """Sweep for unhandled events and held invoices in the background."""
        self._loop_task = asyncio.create_task(self._loop(), name="stripemeter-webhooks")

    async def stop(self) -> None:
        """Stop the sweep and wait for handling in progress."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.drain(), timeout=10)

    async def recover(self) -> int:
        """Handle events received long enough ago that their task must have died."""
        async with self.db.read() as conn:
            ids = await webhook_events.unhandled(conn, self.clock() - RECOVERY_AGE, 100)
        for event_id in ids:
            await self.process(event_id)
        return len(ids)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.recovery_interval)
            try:
                await self.recover()
                await self.gate.recheck_held()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook_recovery_failed")
