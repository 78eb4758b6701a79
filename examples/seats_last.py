"""Bill seats at the last reported count: the metric's aggregation is ``last``.

Seat counts go up and down during the month; the invoice uses the count at the latest event
time, whatever order the reports arrive in. Start a server, then::

    STRIPEMETER_URL=http://localhost:3000 STRIPEMETER_API_KEY=sm_... python examples/seats_last.py
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta

from stripemeter import StripeMeterClient

URL = os.environ.get("STRIPEMETER_URL", "http://localhost:3000")
API_KEY = os.environ["STRIPEMETER_API_KEY"]
SEATS = (5, 8, 12, 9, 7)  # the seat count reported every 10 seconds, oldest first


def main() -> None:
    """Configure ``seats`` as ``last``, report counts, then a late report of an older count."""
    customer = f"cus_demo_{secrets.token_hex(3)}"
    print(f"customer: {customer}")
    # flush_interval=None: nothing is sent in the background, flush() sends now. spool=False keeps
    # unsent events in memory: the default on-disk spool is shared by every client of this
    # server and tenant, and flush() would also deliver (and count) theirs.
    with StripeMeterClient(
        api_url=URL, api_key=API_KEY, flush_interval=None, spool=False
    ) as client:
        # PUT /v1/metrics/seats (needs an admin or mappings:write key).
        metric = client.set_metric("seats", aggregation="last", unit="seats")
        print(f"metric seats: aggregation {metric['aggregation']}")

        start = datetime.now(UTC) - timedelta(seconds=10 * (len(SEATS) + 1))
        for step, seats in enumerate(SEATS):
            at = start + timedelta(seconds=10 * step)
            client.track(metric="seats", customer_ref=customer, quantity=seats, ts=at)
            print(f"  {at:%H:%M:%S} {seats:>3} seats")
        client.flush()
        show(client, customer)

        # A report from before the latest one arrives late: "last" is by event time, so the
        # billed value does not change (the maximum does).
        late = start + timedelta(seconds=15)
        client.track(metric="seats", customer_ref=customer, quantity=20, ts=late)
        client.flush()
        print(f"late report: {late:%H:%M:%S}  20 seats (arrived after the others)")
        show(client, customer)


def show(client: StripeMeterClient, customer: str) -> None:
    """Print the billed value and the other aggregates of the period."""
    usage = client.get_usage(customer).get("seats")
    assert usage is not None
    print(f"billed: {usage.current} seats (last); max {usage.max}, {usage.count} reports")


if __name__ == "__main__":
    main()
