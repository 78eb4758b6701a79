"""Routes under ``/_control/`` (not Stripe's): faults, request log, clock, settings, reset."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from stripemeter.stripe.fake.billing import run_billing
from stripemeter.stripe.fake.context import RequestContext
from stripemeter.stripe.fake.control import parse_fault
from stripemeter.stripe.fake.endpoints import error_response
from stripemeter.stripe.fake.errors import StripeError
from stripemeter.stripe.fake.runtime import FakeRuntime
from stripemeter.stripe.fake.types import JSONObject


async def _json(request: Request) -> JSONObject:
    raw = await request.body()
    data = json.loads(raw) if raw.strip() else {}
    return data if isinstance(data, dict) else {}


def control_routes(runtime: FakeRuntime) -> list[Route]:
    """Build the control API routes for ``runtime``."""

    def guarded(
        fn: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await fn(request)
            except StripeError as exc:
                return error_response(exc)

        return run

    def clock_body() -> JSONObject:
        return {"now": runtime.clock.now(), "frozen": runtime.clock.frozen}

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            runtime.control.add(parse_fault(await _json(request)))
        elif request.method == "DELETE":
            runtime.control.faults.clear()
        return JSONResponse({"faults": runtime.control.describe()})

    async def requests(request: Request) -> Response:
        if request.method == "DELETE":
            runtime.control.requests.clear()
        prefix = request.query_params.get("path", "")
        data = [r for r in runtime.control.requests if r["path"].startswith(prefix)]
        return JSONResponse({"requests": data})

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            body = await _json(request)
            if "set" in body:
                runtime.clock.set(int(body["set"]), freeze=bool(body.get("freeze", True)))
            if "advance" in body:
                runtime.clock.advance(int(body["advance"]))
            # Subscriptions that follow the fake clock bill as soon as time moves.
            for livemode in (False, True):
                ctx = RequestContext(
                    runtime.state, runtime.clock, livemode, runtime.clock.now(), []
                )
                run_billing(ctx, None, ctx.now)
                runtime.webhooks.enqueue(ctx.raised_events)
        return JSONResponse(clock_body())

    async def settings(request: Request) -> Response:
        if request.method == "POST":
            body = await _json(request)
            for name in ("finalize_delay", "upcoming_days"):
                if name in body:
                    setattr(runtime.state.settings, name, int(body[name]))
        return JSONResponse(asdict(runtime.state.settings))

    async def webhooks(request: Request) -> Response:
        return JSONResponse(
            {
                "url": runtime.webhooks.url,
                "secret": runtime.webhooks.secret,
                "deliveries": runtime.webhooks.deliveries,
                "events": runtime.state.events,
            }
        )

    async def stream_errors(request: Request) -> Response:
        return JSONResponse({"errors": runtime.state.stream_errors})

    async def reset(request: Request) -> Response:
        runtime.state.reset()
        runtime.control.clear()
        runtime.webhooks.deliveries.clear()
        runtime.persist()
        return JSONResponse({"reset": True, **clock_body()})

    return [
        Route("/_control/faults", guarded(faults), methods=["GET", "POST", "DELETE"]),
        Route("/_control/requests", guarded(requests), methods=["GET", "DELETE"]),
        Route("/_control/clock", guarded(clock), methods=["GET", "POST"]),
        Route("/_control/settings", guarded(settings), methods=["GET", "POST"]),
        Route("/_control/webhooks", guarded(webhooks), methods=["GET"]),
        Route("/_control/stream_errors", guarded(stream_errors), methods=["GET"]),
        Route("/_control/reset", guarded(reset), methods=["POST"]),
    ]
