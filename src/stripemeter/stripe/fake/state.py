"""In-memory stores of the fake Stripe account, with optional JSON file persistence."""

from __future__ import annotations

import json
import os
import secrets
import string
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stripemeter.stripe.fake.types import JSONObject

_ALPHABET = string.ascii_letters + string.digits

COLLECTIONS = (
    "customers",
    "products",
    "prices",
    "subscriptions",
    "subscription_items",
    "test_clocks",
    "meters",
    "invoices",
)

DEFAULT_FINALIZE_DELAY = 3600  # seconds a draft invoice waits before auto-finalizing (Stripe: 1 h)
DEFAULT_UPCOMING_DAYS = 7  # days before period end that invoice.upcoming is sent


def new_id(prefix: str) -> str:
    """Return a random Stripe-style id such as ``cus_4QbW...``."""
    return f"{prefix}_{''.join(secrets.choice(_ALPHABET) for _ in range(24))}"


@dataclass
class BillingSettings:
    """Knobs of the fake's billing cycle, settable through the control API."""

    finalize_delay: int = DEFAULT_FINALIZE_DELAY
    upcoming_days: int = DEFAULT_UPCOMING_DAYS


@dataclass
class FakeStripeState:
    """Everything the fake Stripe account holds; plain JSON so it can be saved and reloaded."""

    objects: dict[str, dict[str, JSONObject]] = field(
        default_factory=lambda: {name: {} for name in COLLECTIONS}
    )
    #: Stored meter events with bookkeeping (meter, customer, value, receipt time, cancelled).
    meter_events: list[JSONObject] = field(default_factory=list)
    #: (livemode, identifier) -> index into ``meter_events`` of the latest event with it.
    identifiers: dict[str, int] = field(default_factory=dict)
    usage_records: list[JSONObject] = field(default_factory=list)
    sessions: dict[str, JSONObject] = field(default_factory=dict)
    idempotency: dict[str, JSONObject] = field(default_factory=dict)
    events: list[JSONObject] = field(default_factory=list)
    #: Stream events refused after acceptance (Stripe reports these asynchronously).
    stream_errors: list[JSONObject] = field(default_factory=list)
    settings: BillingSettings = field(default_factory=BillingSettings)

    def put(self, collection: str, obj: JSONObject) -> JSONObject:
        """Store (or replace) ``obj`` under its id."""
        self.objects[collection][obj["id"]] = obj
        return obj

    def get(self, collection: str, object_id: str, livemode: bool) -> JSONObject | None:
        """Return the object if it exists in this mode (test and live data never mix)."""
        obj = self.objects[collection].get(object_id)
        if obj is None or obj.get("livemode") != livemode:
            return None
        return obj

    def all(self, collection: str, livemode: bool) -> list[JSONObject]:
        """Return every object of a collection in this mode, newest first."""
        found = [o for o in self.objects[collection].values() if o.get("livemode") == livemode]
        return sorted(found, key=lambda o: o.get("created", 0), reverse=True)

    def to_json(self) -> JSONObject:
        """Return the whole state as JSON-serialisable data."""
        return {
            "objects": self.objects,
            "meter_events": self.meter_events,
            "identifiers": self.identifiers,
            "usage_records": self.usage_records,
            "sessions": self.sessions,
            "idempotency": self.idempotency,
            "events": self.events,
            "stream_errors": self.stream_errors,
            "settings": {
                "finalize_delay": self.settings.finalize_delay,
                "upcoming_days": self.settings.upcoming_days,
            },
        }

    @classmethod
    def from_json(cls, data: JSONObject) -> FakeStripeState:
        """Rebuild a state saved by :meth:`to_json`."""
        objects = {name: {} for name in COLLECTIONS} | data.get("objects", {})
        return cls(
            objects=objects,
            meter_events=data.get("meter_events", []),
            identifiers=data.get("identifiers", {}),
            usage_records=data.get("usage_records", []),
            sessions=data.get("sessions", {}),
            idempotency=data.get("idempotency", {}),
            events=data.get("events", []),
            stream_errors=data.get("stream_errors", []),
            settings=BillingSettings(**data.get("settings", {})),
        )

    def save(self, path: str | Path) -> None:
        """Write the state atomically (temp file, then rename): a crash never leaves half a file."""
        target = Path(path)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(self.to_json(), handle, default=_default)
        os.replace(tmp, target)

    @classmethod
    def load(cls, path: str | Path) -> FakeStripeState:
        """Read a state file, or start empty if it does not exist yet."""
        target = Path(path)
        if not target.exists():
            return cls()
        return cls.from_json(json.loads(target.read_text()))

    def reset(self) -> None:
        """Forget everything (the control API's reset)."""
        fresh = FakeStripeState()
        self.__dict__.update(fresh.__dict__)


def _default(value: Any) -> Any:
    # Decimals are stored as strings so persistence never goes through float.
    return str(value)
