"""Fault injection and the request log, driven by tests through ``/_control/``."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

from stripemeter.stripe.fake.errors import invalid_request
from stripemeter.stripe.fake.types import JSONObject

REQUEST_FAULTS = ("rate_limit", "server_error", "delay", "drop")
FAULT_KINDS = (*REQUEST_FAULTS, "duplicate_webhook")


@dataclass
class Fault:
    """Misbehave on the next ``remaining`` requests (or webhooks) that match."""

    kind: str
    remaining: int = 1
    method: str | None = None
    #: Requests match by path prefix; ``duplicate_webhook`` matches by event type prefix.
    path: str = ""
    delay: float = 0.0
    #: Value of ``Stripe-Should-Retry`` on 429/500 ("true"/"false"), or None to omit it.
    should_retry: str | None = None

    def matches(self, method: str | None, path: str) -> bool:
        """Whether this fault applies to a request (or event type)."""
        return (
            self.remaining > 0
            and (self.method is None or method is None or self.method.upper() == method.upper())
            and path.startswith(self.path)
        )


def parse_fault(data: JSONObject) -> Fault:
    """Build a fault from the control API's JSON body."""
    kind = data.get("kind")
    if kind not in FAULT_KINDS:
        raise invalid_request(f"kind must be one of {', '.join(FAULT_KINDS)}", param="kind")
    should_retry = data.get("should_retry")
    if isinstance(should_retry, bool):
        should_retry = "true" if should_retry else "false"
    return Fault(
        kind=kind,
        remaining=int(data.get("count", 1)),
        method=data.get("method"),
        path=str(data.get("path", "")),
        delay=float(data.get("delay", 0.0)),
        should_retry=should_retry,
    )


class Control:
    """Pending faults and every request the fake received."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.faults: list[Fault] = []
        self.requests: list[JSONObject] = []

    def add(self, fault: Fault) -> None:
        """Queue a fault."""
        with self._lock:
            self.faults.append(fault)

    def take(self, method: str, path: str) -> Fault | None:
        """Consume one use of the first request fault matching ``method path``."""
        with self._lock:
            for fault in self.faults:
                if fault.kind in REQUEST_FAULTS and fault.matches(method, path):
                    fault.remaining -= 1
                    return fault
            return None

    def webhook_duplicates(self, event: JSONObject) -> int:
        """Return how many extra copies of ``event`` to deliver (one per matching fault use)."""
        with self._lock:
            for fault in self.faults:
                if fault.kind == "duplicate_webhook" and fault.matches(None, event["type"]):
                    fault.remaining -= 1
                    return 1
            return 0

    def record(self, entry: JSONObject) -> None:
        """Append a request to the log."""
        with self._lock:
            self.requests.append(entry)

    def describe(self) -> list[JSONObject]:
        """Return the faults that still have uses left."""
        with self._lock:
            return [asdict(f) for f in self.faults if f.remaining > 0]

    def clear(self) -> None:
        """Drop all faults and the request log."""
        with self._lock:
            self.faults.clear()
            self.requests.clear()
