"""Prometheus collectors, in one registry the app serves at ``/metrics``.

No label carries a tenant, customer or key: those are unbounded and sometimes sensitive.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series only double the exposition's size

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
stripe_pushes = Counter(
    "stripemeter_stripe_pushes",
    "Write-log rows handled by the pusher, by target and result.",
    ["target", "result"],
    registry=registry,
)
stripe_retries = Counter(
    "stripemeter_stripe_retries",
    "Stripe calls retried or rescheduled, by error class.",
    ["error"],
    registry=registry,
)
stripe_latency = Histogram(
    "stripemeter_stripe_latency_seconds",
    "Duration of one Stripe call, by driver and outcome.",
    ["driver", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=registry,
)
stripe_breaker_state = Gauge(
    "stripemeter_stripe_breaker_state",
    "Circuit breaker per account: 0 closed, 1 open, 2 half-open.",
    ["account"],
    registry=registry,
)
stripe_oldest_unpushed_seconds = Gauge(
    "stripemeter_stripe_oldest_unpushed_change_seconds",
    "Age of the oldest counter change not yet confirmed by Stripe (0 when idle).",
    registry=registry,
)

# Reconciliation and the pre-invoice gate (issue 4). Labels carry statuses, never tenant ids.
reconciliation_runs = Counter(
    "stripemeter_reconciliation_runs",
    "Reconciliation runs by trigger and outcome (completed, skipped: another worker held it).",
    ["trigger", "outcome"],
    registry=registry,
)
reconciliation_duration = Histogram(
    "stripemeter_reconciliation_duration_seconds",
    "Time one reconciliation run took.",
    registry=registry,
)
reconciliation_results = Counter(
    "stripemeter_reconciliation_results",
    "Report rows written, by status: ok, drift, pending, unmapped, error.",
    ["status"],
    registry=registry,
)
reconciliation_open_drift = Gauge(
    "stripemeter_reconciliation_drift_rows",
    "Current report rows in status drift after the latest run (all tenants).",
    registry=registry,
)
reconciliation_max_drift_pct = Gauge(
    "stripemeter_reconciliation_max_drift_ratio",
    "Largest relative drift among current drift rows (0.01 = 1 %).",
    registry=registry,
)
invoice_gate = Counter(
    "stripemeter_invoice_gate",
    "Draft invoices checked before finalization, by result: ok, held, released, mismatch.",
    ["result"],
    registry=registry,
)
webhook_events = Counter(
    "stripemeter_webhook_events",
    "Stripe webhook deliveries by result: accepted, duplicate, rejected, handled, failed.",
    ["result"],
    registry=registry,
)
alert_evaluations = Counter(
    "stripemeter_alert_evaluations",
    "Alert rules evaluated, by rule type and trigger (loop, ingest, manual, error).",
    ["rule_type", "trigger"],
    registry=registry,
)
alert_transitions = Counter(
    "stripemeter_alert_transitions",
    "Alert state transitions, by rule type and transition.",
    ["rule_type", "transition"],
    registry=registry,
)
alert_deliveries = Counter(
    "stripemeter_alert_deliveries",
    "Alert notification attempts, by channel and result (delivered, retry, failed).",
    ["channel", "result"],
    registry=registry,
)
