"""Track API calls with the SDK; a retried event is a duplicate and counts once.

Start a server (``stripemeter serve`` prints an admin key on its first start), then::

    STRIPEMETER_URL=http://localhost:3000 STRIPEMETER_API_KEY=sm_... python examples/api_calls.py
"""

from __future__ import annotations

import os
import secrets

from stripemeter import StripeMeterClient

URL = os.environ.get("STRIPEMETER_URL", "http://localhost:3000")
API_KEY = os.environ["STRIPEMETER_API_KEY"]


def main() -> None:
    """Track three requests, deliver them twice, and read the usage back."""
    customer = f"cus_demo_{secrets.token_hex(3)}"  # a fresh customer, so every run starts at 0
    print(f"customer: {customer}")
    # flush_interval=None: nothing is sent in the background, flush() sends now. spool=False keeps
    # unsent events in memory: the default on-disk spool is shared by every client of this
    # server and tenant, and flush() would also deliver (and count) theirs.
    with StripeMeterClient(
        api_url=URL, api_key=API_KEY, flush_interval=None, spool=False
    ) as client:
        # Each event gets its idempotency key here, when it is tracked.
        events = [
            client.track(metric="api_calls", customer_ref=customer, quantity=calls)
            for calls in (10, 25, 5)
        ]
        print(f"tracked {len(events)} events, {sum(e.quantity for e in events)} API calls")

        first = client.flush()
        print(f"first delivery: {first.accepted} accepted, {first.duplicates} duplicates")

        # The answer to the first delivery was "lost" (a timeout, a crash): send them again.
        # Same keys, so the server recognises every one of them.
        retry = client.ingest(events)
        print(f"retry of the same events: {retry.accepted} accepted, {retry.duplicates} duplicates")

        usage = client.get_usage(customer)
        metric = usage.get("api_calls")
        assert metric is not None
        print(
            f"usage this period: api_calls = {metric.current} ({metric.count} events, counted once)"
        )


if __name__ == "__main__":
    main()
