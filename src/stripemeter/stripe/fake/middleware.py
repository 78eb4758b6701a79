"""Raw ASGI layer in front of the Stripe routes: injects faults and logs every request."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stripemeter.stripe.fake.errors import StripeError
from stripemeter.stripe.fake.forms import decode_form
from stripemeter.stripe.fake.runtime import FakeRuntime

CONTROL_PREFIX = "/_control"
_LOGGED_HEADERS = (
    "content-type",
    "idempotency-key",
    "stripe-version",
    "stripe-account",
    "user-agent",
)


class FaultMiddleware:
    """Answer with the next queued fault (or delay/drop), and record the request and its status."""

    def __init__(self, app: ASGIApp, runtime: FakeRuntime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        entry = _describe(scope, body)
        entry["received_at"] = self.runtime.clock.now()
        # Wall-clock bounds of the request's handling (Unix seconds, sub-millisecond), so a test
        # can tell whether two requests overlapped; the fake clock above may be frozen.
        entry["started"] = time.time()
        entry["finished"] = None
        self.runtime.control.record(entry)
        try:
            await self._handle(scope, body, send, entry)
        finally:
            entry["finished"] = time.time()

    async def _handle(self, scope: Scope, body: bytes, send: Send, entry: dict[str, Any]) -> None:
        fault = self.runtime.control.take(scope["method"], scope["path"])
        if fault is not None:
            entry["fault"] = fault.kind
            if fault.kind == "delay":
                await asyncio.sleep(fault.delay)
            elif fault.kind == "drop":
                entry["status"] = None
                await _drop_connection(send)
                return
            else:
                await _send_fault(send, fault.kind, fault.should_retry)
                entry["status"] = 429 if fault.kind == "rate_limit" else 500
                return

        async def replay() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(message)

        await self.app(scope, replay, capture)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _describe(scope: Scope, body: bytes) -> dict[str, Any]:
    headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    params: Any
    try:
        if headers.get("content-type", "").startswith("application/json"):
            params = json.loads(body) if body.strip() else {}
        else:
            params = decode_form(body)
    except (ValueError, StripeError):
        params = body.decode(errors="replace")
    return {
        "method": scope["method"],
        "path": scope["path"],
        "query": decode_form(scope.get("query_string", b"")),
        "params": params,
        "headers": {k: headers[k] for k in _LOGGED_HEADERS if k in headers},
        "status": None,
    }


async def _send_fault(send: Send, kind: str, should_retry: str | None) -> None:
    if kind == "rate_limit":
        status = 429
        error = {
            "type": "invalid_request_error",
            "code": "rate_limit",
            "message": "Too many requests hit the API too quickly. (injected by the fake)",
        }
    else:
        status = 500
        error = {
            "type": "api_error",
            "message": "An unknown error occurred. (injected by the fake)",
        }
    headers = [(b"content-type", b"application/json")]
    if should_retry is not None:
        headers.append((b"stripe-should-retry", should_retry.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps({"error": error}).encode()})


async def _drop_connection(send: Send) -> None:
    """Close the TCP connection without writing a single byte of response.

    ASGI has no "abort" message: an app that returns without responding gets a 500 from the
    server, and one that raises after starting a response leaks the status line. uvicorn's
    ``send`` is a bound method of its request cycle, which holds the asyncio transport, so we
    abort that transport directly. The cycle then sees the disconnect and sends nothing more.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        # Not under uvicorn: start a response and stop, the closest portable approximation.
        await send({"type": "http.response.start", "status": 500, "headers": []})
        raise ConnectionAbortedError("fake Stripe dropped the connection")
    transport.abort()
    # Let connection_lost run so the server marks the cycle disconnected before we return.
    for _ in range(3):
        await asyncio.sleep(0)
