"""The request pipeline every Stripe route shares: auth, decoding, idempotency, validation."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from stripemeter.stripe.fake import idempotency
from stripemeter.stripe.fake.billing import run_billing
from stripemeter.stripe.fake.context import RequestContext
from stripemeter.stripe.fake.errors import StripeError, authentication_error, invalid_request
from stripemeter.stripe.fake.forms import decode_form
from stripemeter.stripe.fake.runtime import FakeRuntime
from stripemeter.stripe.fake.types import JSONObject
from stripemeter.stripe.fake.v2 import session_mode
from stripemeter.stripe.fake.validation import Obj, validate

Handler = Callable[..., JSONObject]
Auth = Literal["secret", "session"]

# Decimals go out as JSON numbers written from their exact digits, never through float.
_ENCODER = msgspec.json.Encoder(decimal_format="number")


def encode(body: JSONObject) -> bytes:
    """Encode a response body."""
    return _ENCODER.encode(body)


def json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    """Build a JSON response with Stripe's usual headers."""
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error_response(error: StripeError) -> Response:
    """Render a Stripe-shaped error."""
    return json_response(error.status, encode(error.body()), error.headers)


def api_key(request: Request) -> tuple[str, bool]:
    """Return the secret key and its livemode; raise Stripe's 401 when absent or malformed."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise authentication_error(
            "You did not provide an API key. You need to provide your API key in the Authorization "
            "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
        )
    if key.startswith("sk_test_") and len(key) > len("sk_test_"):
        return key, False
    if key.startswith("sk_live_") and len(key) > len("sk_live_"):
        return key, True
    raise authentication_error(f"Invalid API Key provided: {key[:8]}****{key[-4:]}")


async def decode_params(request: Request, api: Literal["v1", "v2"]) -> JSONObject:
    """Decode the query (GET) or the body: form-encoded on v1, JSON on v2."""
    if request.method == "GET":
        return decode_form(request.url.query)
    raw = await request.body()
    if api == "v1":
        return decode_form(raw)
    if not raw.strip():
        return {}
    try:
        decoded = json.loads(raw)
    except ValueError as exc:
        raise invalid_request("The request body is not valid JSON.") from exc
    if not isinstance(decoded, dict):
        raise invalid_request("The request body must be a JSON object.")
    return decoded


def endpoint(
    runtime: FakeRuntime,
    schema: Obj,
    handler: Handler,
    *,
    api: Literal["v1", "v2"] = "v1",
    auth: Auth = "secret",
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap ``handler(ctx, params, **path_params)`` in the shared request pipeline."""

    async def run(request: Request) -> Response:
        now = runtime.clock.now()
        ctx = RequestContext(runtime.state, runtime.clock, False, now, [])
        saved_key: tuple[str, str] | None = None
        executing = False
        try:
            if auth == "secret":
                scope, ctx.livemode = api_key(request)
            else:
                token = request.headers.get("authorization", "").partition(" ")[2]
                scope, ctx.livemode = token, session_mode(ctx, token)
            # Time-driven billing for subscriptions on the fake clock rather than a test clock.
            run_billing(ctx, None, now)
            params = await decode_params(request, api)
            key = request.headers.get("idempotency-key")
            if request.method == "POST" and key:
                digest = idempotency.fingerprint(request.method, request.url.path, params)
                saved = idempotency.lookup(runtime.state, scope, key, digest, now)
                if saved is not None:
                    return json_response(
                        saved["status"],
                        saved["body"].encode(),
                        {"Idempotent-Replayed": "true", "Idempotency-Key": key},
                    )
                saved_key = (scope, key)
            params = validate(schema, params)
            executing = True
            status, body = 200, encode(handler(ctx, params, **request.path_params))
            headers: dict[str, str] = {}
        except StripeError as exc:
            status, body, headers = exc.status, encode(exc.body()), dict(exc.headers)
        finally:
            runtime.webhooks.enqueue(ctx.raised_events)
        # Stripe saves an idempotent result only once the endpoint began executing.
        if saved_key is not None and executing:
            idempotency.remember(runtime.state, *saved_key, digest, now, status, body)
            headers["Idempotency-Key"] = saved_key[1]
        if request.method == "POST" or ctx.raised_events:
            runtime.persist()
        return json_response(status, body, headers)

    return run


def not_found(request: Request) -> Response:
    """Stripe's answer for an unknown URL."""
    return error_response(
        invalid_request(
            f"Unrecognized request URL ({request.method}: {request.url.path}).", status=404
        )
    )
