"""Building ``stripe.StripeClient`` objects for an account: base addresses, timeouts, no retries."""

from __future__ import annotations

from typing import Any

import httpx
import stripe

DEFAULT_TIMEOUT = 20.0  # seconds for one Stripe call; the pusher retries, the client does not


class _HTTPXClient(stripe.HTTPXClient):
    """stripe's httpx transport, sending bodies as ``content=`` (httpx deprecates raw ``data=``)."""

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Any, post_data: Any
    ) -> list[Any]:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        data = kwargs.pop("data", None)
        if data:
            kwargs["content"] = data
        return [args, kwargs]


def is_live_key(api_key: str) -> bool:
    """Whether a secret or restricted key belongs to live mode."""
    return api_key.startswith(("sk_live_", "rk_live_"))


def build_client(
    api_key: str,
    *,
    api_base: str | None = None,
    meter_events_base: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    asgi_app: Any = None,
) -> stripe.StripeClient:
    """A client for one key, pointed at Stripe or (both bases set) at another server.

    ``max_network_retries=0``: the pusher owns retries, so a retry is always a decision it logged
    and counted, never a hidden second request.
    """
    bases: dict[str, str] = {}
    if api_base:
        bases["api"] = api_base.rstrip("/")
        bases["meter_events"] = (meter_events_base or api_base).rstrip("/")
    elif meter_events_base:
        bases["meter_events"] = meter_events_base.rstrip("/")
    http_client = _HTTPXClient(timeout=timeout, allow_sync_methods=asgi_app is None)
    if asgi_app is not None:
        # In-process server (the embedded fake Stripe): same HTTP requests, no socket.
        http_client._client_async = httpx.AsyncClient(transport=httpx.ASGITransport(app=asgi_app))
    return stripe.StripeClient(
        api_key,
        base_addresses=bases,  # type: ignore[arg-type]
        max_network_retries=0,
        http_client=http_client,
    )
