"""Prometheus collectors, in one registry the app serves at ``/metrics``.

No label carries a tenant, customer or key: those are unbounded and sometimes sensitive.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

registry = CollectorRegistry(auto_describe=True)

ingest_events = Counter(
    "stripemeter_ingest_events",
    "Events through ingest, by result.",
    ["status"],
    registry=registry,
)
ingest_latency = Histogram(
    "stripemeter_ingest_latency_seconds",
    "Time to validate, store and count one ingest request.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=registry,
)
ingest_batch_size = Histogram(
    "stripemeter_ingest_batch_size",
    "Events per ingest request.",
    buckets=(1, 2, 5, 10, 50, 100, 250, 500, 1000, 5000),
    registry=registry,
)
ingest_group_size = Histogram(
    "stripemeter_ingest_group_size",
    "Events per shared ingest transaction (group commit).",
    buckets=(1, 2, 5, 10, 50, 100, 250, 500, 1000, 2000, 5000),
    registry=registry,
)
counter_updates = Counter(
    "stripemeter_counter_updates",
    "Counter rows written by ingest, approvals and replay.",
    ["path"],
    registry=registry,
)
held_events_pending = Gauge(
    "stripemeter_held_events_pending",
    "Held events awaiting review (all tenants), sampled by the background loop.",
    registry=registry,
)
http_requests = Counter(
    "stripemeter_http_requests",
    "HTTP requests by route template, method and status code.",
    ["method", "route", "status"],
    registry=registry,
)
replay_differences = Counter(
    "stripemeter_replay_differences",
    "Counters that replay found different from the ledger.",
    ["mode"],
    registry=registry,
)
