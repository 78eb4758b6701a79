"""A small application run as its own process by the SDK tests: it tracks events and exits.

``python app.py URL KEY SPOOL_DIR COUNT [--customer C] [--pause-at N] [--no-close]`` tracks COUNT
events of metric ``api_calls`` for customer C (``cus_app``). With ``--pause-at N`` it prints
``paused`` after N events (flushed) and waits for a line on stdin before tracking the rest. It
prints the idempotency keys as one JSON line and exits, closing the client unless ``--no-close``
(then the atexit hook does it).
"""

from __future__ import annotations

import argparse
import json
import sys

from stripemeter import StripeMeterClient
from stripemeter.client import Retry


def main() -> None:
    """Run the app."""
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("key")
    parser.add_argument("spool")
    parser.add_argument("count", type=int)
    parser.add_argument("--customer", default="cus_app")
    parser.add_argument("--pause-at", type=int, default=-1)
    parser.add_argument("--no-close", action="store_true")
    args = parser.parse_args()

    client = StripeMeterClient(
        api_url=args.url, api_key=args.key, tenant_id="sdk", customer_id=args.customer,
        spool=args.spool, flush_interval=60.0, close_budget=0.5,
        retry=Retry(attempts=3, backoff=0.05, jitter=0.0),
    )  # fmt: skip
    keys = []
    for i in range(args.count):
        if i == args.pause_at:
            client.flush()
            print("paused", flush=True)
            sys.stdin.readline()
        keys.append(client.track(metric="api_calls", quantity=1, meta={"i": i}).idempotency_key)
    print(json.dumps(keys), flush=True)
    if not args.no_close:
        client.close()


if __name__ == "__main__":
    main()
