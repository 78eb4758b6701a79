"""Meter LLM tokens and price them with graduated tiers; read the projected invoice.

The price is a Stripe Price object (amounts in cents, as Stripe's API takes them): $2.00 per
million tokens up to 1M, $1.50 per million up to 10M, $1.00 per million above. Start a server::

    STRIPEMETER_URL=http://localhost:3000 STRIPEMETER_API_KEY=sm_... python examples/tokens_tiered.py
"""

from __future__ import annotations

import os
import secrets

from stripemeter import StripeMeterClient

URL = os.environ.get("STRIPEMETER_URL", "http://localhost:3000")
API_KEY = os.environ["STRIPEMETER_API_KEY"]
PRICE = {
    "currency": "usd",
    "billing_scheme": "tiered",
    "tiers_mode": "graduated",
    "tiers": [
        {"up_to": 1_000_000, "unit_amount_decimal": "0.0002"},  # cents per token
        {"up_to": 10_000_000, "unit_amount_decimal": "0.00015"},
        {"up_to": "inf", "unit_amount_decimal": "0.0001"},
    ],
}
REQUESTS = (800_000, 1_500_000, 2_200_000)  # tokens used by three requests


def main() -> None:
    """Price ``tokens``, track three requests' tokens, and print the projection."""
    customer = f"cus_demo_{secrets.token_hex(3)}"
    print(f"customer: {customer}")
    # flush_interval=None: nothing is sent in the background, flush() sends now. spool=False keeps
    # unsent events in memory: the default on-disk spool is shared by every client of this
    # server and tenant, and flush() would also deliver (and count) theirs.
    with StripeMeterClient(
        api_url=URL, api_key=API_KEY, flush_interval=None, spool=False
    ) as client:
        # PUT /v1/metric-prices/tokens: a price on the metric (a Stripe price mapped to the
        # metric would win over it).
        client.set_metric_price("tokens", PRICE)
        for tokens in REQUESTS:
            client.track(metric="tokens", customer_ref=customer, quantity=tokens)
        client.flush()
        print(f"tracked {len(REQUESTS)} requests, {sum(REQUESTS):,} tokens")

        projection = client.get_projection(customer)  # POST /v1/usage/projection
        line = next(li for li in projection.line_items if li.metric == "tokens")
        for tier in line.raw.get("tiers", []):
            up_to = "inf" if tier["upTo"] is None else f"{int(tier['upTo']):,}"
            print(
                f"  tier {tier['tier']} (up to {up_to}): {int(tier['quantity']):,} tokens"
                f" x {tier['unitAmountDecimal']} cents"
            )
        currency = (projection.currency or "usd").upper()
        print(f"tokens so far: {line.quantity:,} -> {line.total} {currency}")
        print(f"invoice so far: {projection.total} {currency}")
        if projection.projected_total is not None:
            print(f"projected at period end (run rate): {projection.projected_total} {currency}")


if __name__ == "__main__":
    main()
