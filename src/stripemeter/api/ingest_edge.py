"""The ingest routes served ahead of the framework: ``POST /v1/events[/ingest]`` as plain ASGI.

Ingest is the request a metering service gets most of, and in a single-event request the framework
(middleware stack, routing across every router, dependency solving, ``Request`` objects) cost more
CPU than validating and recording the event. The app hands these requests here before any of that;
this module does what the routes in ``api/routes/events.py`` do, with the same functions (key
check, body reading, ingest, rendering, error envelopes), so both paths answer byte for byte alike
(``tests/integration/test_ingest_edge.py`` holds them to it). Requests with a query string
(``atomic``, ``tenantId``) go through the router.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from stripemeter.api.auth import authorize, key_from_headers
from stripemeter.api.errors import (
    PayloadTooLarge,
    domain_error_response,
    unexpected_error_response,
)
from stripemeter.api.middleware import bind_log_context, finish_request, request_id_for, too_large
from stripemeter.api.routes.events import INGEST_PATHS, run_ingest
from stripemeter.domain.errors import StripeMeterError
from stripemeter.domain.scopes import Scope as KeyScope
from stripemeter.services.keys import Principal

if TYPE_CHECKING:
    from stripemeter.api.app import Services

_JSON = (b"content-type", b"application/json")
_REPLAYED = (b"idempotent-replayed", b"true")


class ClientGone(Exception):  # control flow: the client disconnected before sending its body
    pass


def _log_context(request_id: str, principal: Principal | None) -> dict[str, str]:
    if principal is None:
        return {"request_id": request_id}
    return {"request_id": request_id, "tenant": principal.tenant_id, "key_id": principal.key_id}


def ingest_route(scope: Scope) -> bool | None:
    """For a request the edge serves, whether its body is one event; None for any other request."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope["query_string"]:
        return None
    return INGEST_PATHS.get(scope["path"])


class IngestEdge:
    """Serves the ingest routes for one app's services."""

    def __init__(self, services: Services, *, max_body_bytes: int) -> None:
        self.services = services
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send, *, single: bool) -> None:
        started = time.perf_counter()
        incoming = ""
        length = authorization = api_key = idempotency_key = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-api-key":
                api_key = value.decode("latin-1")
            elif name == b"content-length":
                length = value
            elif name == b"idempotency-key":
                idempotency_key = value.decode("latin-1")
            elif name == b"x-request-id":
                incoming = value.decode("latin-1")
        # The log context is bound only for an error's lines: a request that succeeds logs only
        # its request line, which gets the same fields directly.
        request_id = request_id_for(scope, incoming)
        headers = [(b"x-request-id", request_id.encode())]
        principal: Principal | None = None
        try:
            if too_large(length, self.max_body_bytes):
                raise PayloadTooLarge(f"request body exceeds {self.max_body_bytes} bytes")
            principal = await authorize(
                self.services.keys,
                key_from_headers(authorization, api_key),
                KeyScope.EVENTS_WRITE,
            )
            raw = await self._body(receive)
            status, body, replayed = await run_ingest(
                self.services,
                principal,
                raw,
                single=single,
                atomic=False,
                query=b"",
                request_id=request_id,
                idempotency_key=idempotency_key,
            )
        except ClientGone:
            return
        except Exception as exc:
            context = _log_context(request_id, principal)
            bind_log_context(**context)
            response = (
                domain_error_response(exc)
                if isinstance(exc, StripeMeterError)
                else unexpected_error_response(exc)
            )
            await self._send_response(response, headers, scope, receive, send)
            path = scope["path"]
            finish_request("POST", path, path, response.status_code, started, context)
            return
        headers.append(_JSON)
        if replayed:
            headers.append(_REPLAYED)
        payload = body.encode()
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
        path = scope["path"]
        finish_request("POST", path, path, status, started, _log_context(request_id, principal))

    async def _body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge(f"request body exceeds {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @staticmethod
    async def _send_response(
        response: Response,
        headers: list[tuple[bytes, bytes]],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await response(scope, receive, send_with_id)
