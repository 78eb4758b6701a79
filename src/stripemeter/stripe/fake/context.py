"""What every handler receives: the state, the clock and the caller's mode."""

from __future__ import annotations

from dataclasses import dataclass

from stripemeter.stripe.fake.clock import FakeClock
from stripemeter.stripe.fake.state import FakeStripeState
from stripemeter.stripe.fake.types import JSONObject


@dataclass
class RequestContext:
    """One request's view of the fake account."""

    state: FakeStripeState
    clock: FakeClock
    livemode: bool
    now: int
    #: Webhook events raised while handling the request, delivered after it.
    raised_events: list[JSONObject]

    def time_for_clock(self, test_clock_id: str | None) -> int:
        """Return the frozen time of a test clock, or the fake's own time when there is none."""
        if test_clock_id:
            clock = self.state.get("test_clocks", test_clock_id, self.livemode)
            if clock is not None:
                return int(clock["frozen_time"])
        return self.now

    def time_for_customer(self, customer_id: str | None) -> int:
        """Return the time as the customer sees it (its test clock, if it has one)."""
        customer = self.state.get("customers", customer_id, self.livemode) if customer_id else None
        return self.time_for_clock(customer.get("test_clock") if customer else None)


def list_object(url: str, data: list[JSONObject], params: JSONObject) -> JSONObject:
    """Render a Stripe list with ``limit``/``starting_after``/``ending_before`` paging by id."""
    limit = int(params.get("limit", 10))
    if params.get("starting_after"):
        ids = [o.get("id") for o in data]
        if params["starting_after"] in ids:
            data = data[ids.index(params["starting_after"]) + 1 :]
    elif params.get("ending_before"):
        ids = [o.get("id") for o in data]
        if params["ending_before"] in ids:
            data = data[: ids.index(params["ending_before"])][-limit:]
    return {"object": "list", "url": url, "has_more": len(data) > limit, "data": data[:limit]}
