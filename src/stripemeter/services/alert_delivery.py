"""Delivering alert notifications: signed webhooks, Slack, e-mail over SMTP, and the log.

Every notification is a row in ``alert_deliveries`` written in the transaction that recorded the
transition, so nothing is lost if this process dies. The loop leases due rows (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL), sends them, and records the outcome; a failure is retried with doubling
delays up to ``max_attempts``, then shown as ``failed`` until someone retries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import json
import random
import secrets
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from sqlalchemy.engine import RowMapping

from stripemeter._version import __version__
from stripemeter.domain.alerts import SIGNATURE_HEADER, retry_delay, signature_header
from stripemeter.observability import metrics
from stripemeter.store import alerts as store
from stripemeter.store.database import Database

log = structlog.get_logger("stripemeter.alerts")

DELIVERY_INTERVAL = 2.0  # seconds between polls for due deliveries
DELIVERY_BATCH = 50
LEASE_SECONDS = 60.0
STOP_GRACE = 5.0  # seconds stop() waits for deliveries in flight


def _utcnow() -> datetime:
    return datetime.now(UTC)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default certificate verification, built once per process.

    Loading the CA bundle takes about 25 ms, and every start of the delivery loop needs a client.
    """
    return httpx.create_ssl_context()


class DeliveryError(Exception):
    """One attempt failed; ``code`` is the HTTP status when there was one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Where e-mail goes out."""

    host: str | None = None
    port: int = 587
    username: str | None = None
    password: str | None = None
    sender: str = "stripemeter@localhost"
    starttls: bool = True
    use_ssl: bool = False
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """Retry schedule, timeouts and the SSRF guard."""

    max_attempts: int = 8
    backoff_base: float = 5.0  # seconds before the first retry; doubles each time
    backoff_cap: float = 3600.0
    timeout: float = 10.0
    allow_private: bool = False
    interval: float = DELIVERY_INTERVAL


async def check_destination(url: str, *, allow_private: bool) -> None:
    """Refuse URLs whose host resolves to a private, loopback, link-local or reserved address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DeliveryError("not an http(s) URL")
    if allow_private:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port, type=socket.SOCK_STREAM
        )
    except OSError as exc:
        raise DeliveryError(f"cannot resolve {parts.hostname}: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise DeliveryError(f"{parts.hostname} resolves to a non-public address ({address})")


def summary_line(payload: dict[str, Any]) -> str:
    """One human line for chat and e-mail subjects."""
    alert = payload["alert"]
    scope = " ".join(
        part
        for part in (
            f"customer {alert['customerRef']}" if alert.get("customerRef") else "",
            f"metric {alert['metric']}" if alert.get("metric") else "",
        )
        if part
    )
    value = alert.get("value")
    threshold = alert.get("threshold")
    numbers = f": value {value}" + (f", threshold {threshold}" if threshold is not None else "")
    return (
        f"[StripeMeter] {alert['ruleName']} {payload['transition']}"
        + (f" ({scope})" if scope else "")
        + numbers
    )


class AlertDeliverer:
    """Sends owed notifications and keeps their log."""

    def __init__(
        self,
        db: Database,
        *,
        options: DeliveryOptions | None = None,
        smtp: SmtpConfig | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._db = db
        self.options = options or DeliveryOptions()
        self.smtp = smtp or SmtpConfig()
        self._clock = clock
        self.owner = f"alerts-{secrets.token_hex(4)}"
        self._http: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._busy = False

    def start(self) -> None:
        """Start the delivery loop on the running event loop."""
        self._http = httpx.AsyncClient(
            timeout=self.options.timeout,
            verify=_tls_context(),
            follow_redirects=False,
            headers={"User-Agent": f"StripeMeter-Alerts/{__version__}"},
            trust_env=False,
        )
        self._stopping = False
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Let a round in progress finish (up to ``STOP_GRACE`` seconds), then stop the loop.

        A row still leased when the process dies is picked up again once its lease expires.
        """
        if self._task is not None:
            self._stopping = True
            self._wake.set()
            if not self._busy:
                self._task.cancel()
            _, pending = await asyncio.wait({self._task}, timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def wake(self) -> None:
        """Look for due deliveries now."""
        self._wake.set()

    async def _loop(self) -> None:
        while not self._stopping:
            # Wait first: new deliveries wake the loop, older ones can wait one interval.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.options.interval)
            self._wake.clear()
            if self._stopping:
                return
            self._busy = True
            try:
                while not self._stopping and await self.run_once():
                    pass
            except Exception as exc:  # a failed round must not stop the loop
                log.warning("alert_delivery_round_failed", error=repr(exc))
            finally:
                self._busy = False

    async def run_once(self) -> int:
        """Lease and send one batch of due deliveries; returns how many were attempted."""
        now = self._clock()
        until = now + timedelta(seconds=LEASE_SECONDS)
        async with self._db.read() as conn:
            if not await store.any_due_delivery(conn, now):
                return 0
        async with self._db.write() as conn:
            rows = await store.lease_deliveries(conn, self.owner, now, until, DELIVERY_BATCH)
        if rows:
            await asyncio.gather(*(self._attempt(row) for row in rows))
        return len(rows)

    async def _attempt(self, row: RowMapping) -> None:
        channel_type = row["channel_type"]
        attempts = row["attempts"] + 1
        started = time.monotonic()
        try:
            code = await self._send(channel_type, row["channel"], row["payload"], row["id"])
        except Exception as exc:
            error = exc if isinstance(exc, DeliveryError) else DeliveryError(repr(exc))
            await self._failed(row, attempts, error)
            return
        now = self._clock()
        async with self._db.write() as conn:
            await store.finish_delivery(
                conn,
                row["id"],
                self.owner,
                {"status": "delivered", "attempts": attempts, "response_code": code,
                 "last_error": None, "delivered_at": now, "updated_at": now},
            )  # fmt: skip
        metrics.alert_deliveries.labels(channel_type, "delivered").inc()
        log.info(
            "alert_delivered",
            delivery=row["id"],
            channel=channel_type,
            attempts=attempts,
            seconds=round(time.monotonic() - started, 3),
        )

    async def _failed(self, row: RowMapping, attempts: int, error: DeliveryError) -> None:
        now = self._clock()
        final = attempts >= self.options.max_attempts
        delay = retry_delay(
            attempts,
            base=self.options.backoff_base,
            cap=self.options.backoff_cap,
            jitter=random.random(),  # noqa: S311 - spreading retries, not cryptography
        )
        async with self._db.write() as conn:
            await store.finish_delivery(
                conn,
                row["id"],
                self.owner,
                {
                    "status": "failed" if final else "pending",
                    "attempts": attempts,
                    "last_error": str(error)[:1000],
                    "response_code": error.code,
                    "next_attempt_at": now if final else now + delay,
                    "updated_at": now,
                },
            )
        metrics.alert_deliveries.labels(row["channel_type"], "failed" if final else "retry").inc()
        log.warning(
            "alert_delivery_failed",
            delivery=row["id"],
            channel=row["channel_type"],
            attempts=attempts,
            final=final,
            error=str(error)[:200],
        )

    async def _send(
        self, channel_type: str, channel: dict[str, Any], payload: dict[str, Any], delivery_id: int
    ) -> int | None:
        if channel_type == "log":
            log.warning("alert_notification", summary=summary_line(payload), notification=payload)
            return None
        if channel_type == "email":
            await asyncio.to_thread(self._send_email, channel["to"], payload)
            return None
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json"}
        if channel_type == "slack":
            body = json.dumps({"text": summary_line(payload)}).encode()
        else:
            headers["StripeMeter-Delivery"] = str(delivery_id)
            headers["StripeMeter-Event"] = str(payload["id"])
            secret = channel.get("secret")
            if secret:
                headers[SIGNATURE_HEADER] = signature_header(secret, int(time.time()), body)
        return await self._post(channel["url"], body, headers)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        await check_destination(url, allow_private=self.options.allow_private)
        assert self._http is not None, "the deliverer is not started"
        try:
            response = await self._http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"HTTP {response.status_code}", response.status_code)
        return response.status_code

    def _send_email(self, to: list[str], payload: dict[str, Any]) -> None:
        config = self.smtp
        if not config.host:
            raise DeliveryError("e-mail is not configured (STRIPEMETER_SMTP_HOST)")
        message = EmailMessage()
        message["Subject"] = summary_line(payload)
        message["From"] = config.sender
        message["To"] = ", ".join(to)
        message.set_content(
            summary_line(payload) + "\n\n" + json.dumps(payload, indent=2, sort_keys=True)
        )
        context = ssl.create_default_context()
        client: smtplib.SMTP
        try:
            if config.use_ssl:
                client = smtplib.SMTP_SSL(
                    config.host, config.port, timeout=config.timeout, context=context
                )
            else:
                client = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
            with client:
                if config.starttls and not config.use_ssl:
                    client.ehlo()
                    if client.has_extn("starttls"):
                        client.starttls(context=context)
                        client.ehlo()
                    elif config.username:
                        raise DeliveryError(
                            "the SMTP server offers no STARTTLS; not sending a password"
                        )
                if config.username:
                    client.login(config.username, config.password or "")
                client.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP: {exc}") from None
