"""Every table, in one MetaData with a naming convention so migrations name constraints alike."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from stripemeter.store.types import Quantity, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants a BIGINT identity.
Id = BigInteger().with_variant(Integer(), "sqlite")

tenants = Table(
    "tenants",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("strict_metrics", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(32), nullable=False, unique=True),
    Column("secret_hash", String(64), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
    Column("rotated_from", String(40)),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(64), nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("payload_hash", String(64), nullable=False),
    Column("metric", String(100), nullable=False),
    Column("customer_ref", String(255), nullable=False),
    Column("resource_id", String(255)),
    Column("quantity", Quantity, nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    Column("ts_text", String(40), nullable=False),
    Column("period_start", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),  # accepted | held
    Column("held_reason", String(40)),
    Column("source", String(16), nullable=False),
    Column("meta", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("request_id", String(64)),
    UniqueConstraint("tenant_id", "idempotency_key"),
    Index("ix_events_tenant_metric_customer_ts", "tenant_id", "metric", "customer_ref", "ts"),
    Index("ix_events_tenant_id_desc", "tenant_id", "id"),
    # Held events wait for review; indexing only them keeps the index off the hot insert path.
    Index(
        "ix_events_held",
        "tenant_id",
        "id",
        postgresql_where=text("status = 'held'"),
        sqlite_where=text("status = 'held'"),
    ),
)

counters = Table(
    "counters",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("metric", String(100), primary_key=True),
    Column("customer_ref", String(255), primary_key=True),
    Column("period_start", UTCDateTime, primary_key=True),
    Column("period_end", UTCDateTime, nullable=False),
    Column("sum", Quantity, nullable=False),
    Column("max", Quantity),
    Column("last", Quantity),
    Column("last_ts", UTCDateTime),
    Column("last_key", String(255)),
    Column("count", BigInteger, nullable=False),
    Column("watermark", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    # The pusher's change feed. Indexing updated_at itself would make every ingest's counter
    # update a non-HOT one (a new entry in each index); the minute stays put while a counter is
    # busy, so most updates rewrite the row in place (migration 0009).
    Column("updated_minute", UTCDateTime, nullable=False),
    Index("ix_counters_tenant_customer", "tenant_id", "customer_ref", "period_start"),
    Index("ix_counters_updated_minute_tenant", "updated_minute", "tenant_id"),
)

metric_settings = Table(
    "metric_settings",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("metric", String(100), primary_key=True),
    Column("aggregation", String(8), nullable=False),
    Column("lateness_window_seconds", BigInteger, nullable=False),
    Column("unit", String(40), nullable=False),
    Column("description", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

adjustments = Table(
    "adjustments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(64), nullable=False),
    Column("metric", String(100), nullable=False),
    Column("customer_ref", String(255), nullable=False),
    Column("period_start", UTCDateTime, nullable=False),
    Column("delta", Quantity, nullable=False),
    Column("reason", String(40), nullable=False),
    Column("note", Text),
    Column("status", String(16), nullable=False),  # pending | approved | rejected | reverted
    Column("event_id", BigInteger),  # set when the adjustment counts a held event
    Column("event_ts", UTCDateTime),
    Column("created_by", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("decided_by", String(64)),
    Column("decided_at", UTCDateTime),
    Index("ix_adjustments_counter", "tenant_id", "metric", "customer_ref", "period_start"),
    Index("ix_adjustments_tenant_status", "tenant_id", "status"),
)

event_reviews = Table(
    "event_reviews",
    metadata,
    Column("event_id", BigInteger, primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("decision", String(16), nullable=False),  # approved | dismissed
    Column("actor", String(64), nullable=False),
    Column("note", Text),
    Column("adjustment_id", BigInteger),
    Column("decided_at", UTCDateTime, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(64), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target_type", String(40), nullable=False),
    Column("target_id", String(255), nullable=False),
    Column("details", JSON, nullable=False),
    Column("request_id", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_audit_log_tenant_id", "tenant_id", "id"),
)

idempotent_requests = Table(
    "idempotent_requests",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response_body", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# --- Stripe sync: price mappings, customer mappings, the two-phase write log -----------------------

price_mappings = Table(
    "price_mappings",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("metric", String(100), nullable=False),
    Column("aggregation", String(8), nullable=False),  # sum | max | last | count
    Column("driver", String(16), nullable=False),  # meters | meter_stream | legacy
    Column("stripe_account", String(100), nullable=False),  # "default" or acct_…
    Column("meter_event_name", String(100)),
    Column("meter_id", String(100)),
    Column("price_id", String(100)),
    Column("subscription_item_id", String(100)),
    Column("currency", String(3)),
    Column("active", Boolean, nullable=False),
    Column("shadow", Boolean, nullable=False),
    Column("shadow_stripe_account", String(100)),
    Column("shadow_meter_event_name", String(100)),
    Column("shadow_price_id", String(100)),
    Column("shadow_subscription_item_id", String(100)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_price_mappings_tenant_metric", "tenant_id", "metric"),
)

customer_mappings = Table(
    "customer_mappings",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("customer_ref", String(255), primary_key=True),
    Column("stripe_customer_id", String(100), nullable=False),
    Column("shadow_stripe_customer_id", String(100)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_customer_mappings_tenant_stripe", "tenant_id", "stripe_customer_id"),
)

# One row per (mapping, target, customer, billing period): what Stripe has confirmed, and the one
# push in flight (intent written and committed before Stripe is called).
push_log = Table(
    "push_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(64), nullable=False),
    Column("mapping_id", String(40), nullable=False),
    Column("target", String(8), nullable=False),  # live | shadow
    Column("customer_ref", String(255), nullable=False),
    Column("period_start", UTCDateTime, nullable=False),
    Column("period_end", UTCDateTime, nullable=False),
    Column("pushed_total", Quantity, nullable=False),
    Column("pushed_seq", Integer, nullable=False),
    Column("last_stamp", UTCDateTime),
    Column("pending_from", Quantity),
    Column("pending_to", Quantity),
    Column("pending_stamp", UTCDateTime),
    Column("pending_since", UTCDateTime),
    Column("identifier", String(100)),
    Column("status", String(8), nullable=False),  # ok | pending | parked
    Column("dirty", Boolean, nullable=False),
    Column("changed_at", UTCDateTime),  # oldest counter change not yet pushed
    Column("seen_at", UTCDateTime),  # the newest counters.updated_at the change scan marked
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("mapping_id", "target", "customer_ref", "period_start"),
    Index("ix_push_log_work", "next_attempt_at", "dirty", "status"),
    Index("ix_push_log_tenant", "tenant_id", "customer_ref", "period_start"),
)

# How far each mapping's change scan has read ``counters.updated_at``.
push_cursors = Table(
    "push_cursors",
    metadata,
    Column("mapping_id", String(40), primary_key=True),
    Column("seen_until", UTCDateTime, nullable=False),
)

# The Stripe subscription item a (mapping, target, customer) bills through, with its cycle.
stripe_subscription_items = Table(
    "stripe_subscription_items",
    metadata,
    Column("mapping_id", String(40), primary_key=True),
    Column("target", String(8), primary_key=True),
    Column("customer_ref", String(255), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("subscription_id", String(100)),
    Column("item_id", String(100)),
    Column("anchor", UTCDateTime),
    Column("interval", String(8)),
    Column("interval_count", Integer),
    Column("current_period_start", UTCDateTime),
    Column("current_period_end", UTCDateTime),
    Column("fetched_at", UTCDateTime, nullable=False),
)

# A customer's billing cycle (issue 3): counters are keyed by its anchored periods when it is known,
# by calendar months otherwise. A row whose anchor is NULL records a lookup that found no cycle.
billing_cycles = Table(
    "billing_cycles",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("customer_ref", String(255), primary_key=True),
    Column("anchor", UTCDateTime),
    Column("interval", String(8)),
    Column("interval_count", Integer),
    Column("stripe_customer_id", String(100)),  # the Stripe customer the cycle was read from
    Column("subscription_id", String(100)),
    Column("source", String(16), nullable=False),  # pusher | webhook | mapping | manual
    Column("checked_at", UTCDateTime),  # the last lookup at Stripe; NULL: look again
    Column("updated_at", UTCDateTime, nullable=False),  # when the cycle last changed
)

# Pricing (issue 5): a price configured on a metric, and the invoice simulator's scenarios and runs.

metric_prices = Table(
    "metric_prices",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("metric", String(100), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("price", JSON, nullable=False),  # Stripe's Price shape; decimals as strings
    Column("minimum_amount", BigInteger),  # minor units; None = no minimum
    Column("maximum_amount", BigInteger),
    Column("updated_at", UTCDateTime, nullable=False),
)

simulation_scenarios = Table(
    "simulation_scenarios",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("description", Text, nullable=False),
    Column("version", String(50), nullable=False),
    Column("tags", JSON, nullable=False),
    Column("document", JSON, nullable=False),  # the scenario as written (decimals as strings)
    Column("active", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_simulation_scenarios_tenant", "tenant_id", "active", "created_at"),
)

simulation_batches = Table(
    "simulation_batches",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("description", Text, nullable=False),
    Column("scenario_ids", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # completed | failed | partial
    Column("summary", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    Index("ix_simulation_batches_tenant", "tenant_id", "created_at"),
)

simulation_runs = Table(
    "simulation_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("scenario_id", String(40)),
    Column("batch_id", String(40)),
    Column("name", String(255), nullable=False),
    Column("status", String(16), nullable=False),  # completed | failed
    Column("passed", Boolean),
    Column("scenario_snapshot", JSON, nullable=False),
    Column("result", JSON),
    Column("error", JSON),
    Column("duration_ms", Integer),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    Index("ix_simulation_runs_tenant", "tenant_id", "created_at"),
    Index("ix_simulation_runs_batch", "tenant_id", "batch_id"),
)

# Admin console and widget (issue 7): the per-database signing secret and console sessions.

# Secrets generated once per database, so every process signs and verifies with the same key
# when STRIPEMETER_SECRET_KEY is not set. The first process to insert wins; the others read it.
app_secrets = Table(
    "app_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# Console sign-ins: the cookie carries a random token; only its SHA-256 is stored here, with the
# key it was opened with (checked again on every request) and the per-session CSRF token.
ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("key_id", String(40), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Index("ix_ui_sessions_key_id", "key_id"),
    Index("ix_ui_sessions_expires_at", "expires_at"),
)

# Reconciliation and repair (issue 4): drift reports, runs, suggestions, webhooks, the invoice gate,
# closed periods, true-ups and backfills.

# Per-tenant ('' mapping) and per-mapping reconciliation settings; NULL means "inherit".
reconciliation_settings = Table(
    "reconciliation_settings",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("mapping_id", String(40), primary_key=True),  # '' = the tenant's defaults
    Column("epsilon", Quantity),  # relative drift tolerated, e.g. 0.005
    Column("gate_policy", String(8)),  # hold | report
    Column("allow_self_approval", Boolean),
    Column("updated_at", UTCDateTime, nullable=False),
)

# One current row per (mapping, target, customer, period), upserted by every run.
reconciliation_reports = Table(
    "reconciliation_reports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(64), nullable=False),
    Column("metric", String(100), nullable=False),
    Column("mapping_id", String(40), nullable=False),  # '' when the metric has no mapping
    Column("target", String(8), nullable=False),  # live | shadow
    Column("customer_ref", String(255), nullable=False),
    Column("stripe_customer_id", String(100)),
    Column("period_start", UTCDateTime, nullable=False),
    Column("period_end", UTCDateTime, nullable=False),
    Column("local_total", Quantity, nullable=False),
    Column("pushed_total", Quantity),
    Column("stripe_total", Quantity),
    Column("trued_up", Quantity, nullable=False),
    Column("drift_abs", Quantity),
    Column("drift_pct", Quantity),
    Column("epsilon", Quantity, nullable=False),
    Column("status", String(12), nullable=False),  # ok | drift | pending | unmapped | error
    Column("detail", Text),
    Column("closed", Boolean, nullable=False),
    Column("run_id", String(40), nullable=False),
    Column("checked_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("tenant_id", "metric", "mapping_id", "target", "customer_ref", "period_start"),
    Index("ix_reconciliation_reports_tenant_period", "tenant_id", "period_start"),
    Index("ix_reconciliation_reports_tenant_status", "tenant_id", "status"),
)

reconciliation_runs = Table(
    "reconciliation_runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(64)),  # None: every tenant (the schedule)
    Column("trigger", String(16), nullable=False),  # schedule | manual | webhook | repair
    Column("customer_ref", String(255)),
    Column("status", String(12), nullable=False),  # running | completed | skipped | failed
    Column("counts", JSON, nullable=False),
    Column("error", Text),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Index("ix_reconciliation_runs_tenant", "tenant_id", "started_at"),
)

# Every result of every run (the current table keeps only the latest per key).
reconciliation_history = Table(
    "reconciliation_history",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("run_id", String(40), nullable=False),
    Column("report_id", BigInteger, nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("local_total", Quantity, nullable=False),
    Column("pushed_total", Quantity),
    Column("stripe_total", Quantity),
    Column("status", String(12), nullable=False),
    Column("detail", Text),
    Column("checked_at", UTCDateTime, nullable=False),
    Index("ix_reconciliation_history_report", "tenant_id", "report_id", "id"),
)

# At most one suggestion per report: rewritten while open, kept once applied.
reconciliation_suggestions = Table(
    "reconciliation_suggestions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(64), nullable=False),
    Column("report_id", BigInteger, nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # push_missing | compensate | resend | true_up
    Column("delta", Quantity, nullable=False),
    Column("description", Text, nullable=False),
    Column("status", String(12), nullable=False),  # open | applied | resolved | failed
    Column("result", JSON),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("applied_by", String(64)),
    Column("applied_at", UTCDateTime),
    Index("ix_reconciliation_suggestions_tenant", "tenant_id", "status"),
)

# Every Stripe webhook event, recorded before it is answered, handled once.
stripe_webhook_events = Table(
    "stripe_webhook_events",
    metadata,
    Column("id", String(255), primary_key=True),  # Stripe's event id
    Column("type", String(100), nullable=False),
    Column("tenant_hint", String(64)),  # the tenant of the endpoint path, when one was used
    Column("livemode", Boolean, nullable=False),
    Column("stripe_created", BigInteger),
    Column("payload", Text, nullable=False),
    Column("status", String(12), nullable=False),  # received | done | failed | ignored
    Column("attempts", Integer, nullable=False),
    Column("error", Text),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", UTCDateTime),
    Column("received_at", UTCDateTime, nullable=False),
    Column("processed_at", UTCDateTime),
    Index("ix_stripe_webhook_events_status", "status", "received_at"),
)

# The pre-invoice parity record of one Stripe invoice.
invoice_parity = Table(
    "invoice_parity",
    metadata,
    Column("invoice_id", String(255), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("stripe_customer_id", String(100), nullable=False),
    Column("customer_ref", String(255), nullable=False),
    Column("period_start", UTCDateTime, nullable=False),
    Column("period_end", UTCDateTime, nullable=False),
    Column("policy", String(8), nullable=False),
    Column("status", String(12), nullable=False),  # ok | held | released | mismatch | finalized
    Column("lines", JSON, nullable=False),
    Column("actions", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_invoice_parity_tenant", "tenant_id", "customer_ref", "period_start"),
)

billing_alerts = Table(
    "billing_alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(64), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("severity", String(8), nullable=False),  # info | warn | critical
    Column("subject", String(255), nullable=False),
    Column("message", Text, nullable=False),
    Column("details", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Index("ix_billing_alerts_tenant", "tenant_id", "id"),
)

# A customer's billing period whose invoice is finalized: no more pushes, corrections true up.
closed_periods = Table(
    "closed_periods",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("customer_ref", String(255), primary_key=True),
    Column("period_start", UTCDateTime, primary_key=True),
    Column("period_end", UTCDateTime, nullable=False),
    Column("invoice_id", String(255)),
    Column("closed_at", UTCDateTime, nullable=False),
)

# Corrections for closed periods, billed on the next invoice (invoice item) or credited.
true_ups = Table(
    "true_ups",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(64), nullable=False),
    Column("metric", String(100), nullable=False),
    Column("mapping_id", String(40), nullable=False),
    Column("customer_ref", String(255), nullable=False),
    Column("period_start", UTCDateTime, nullable=False),
    Column("quantity", Quantity, nullable=False),
    Column("amount", BigInteger, nullable=False),  # minor units; negative = credit
    Column("currency", String(3), nullable=False),
    Column("kind", String(12), nullable=False),  # invoice_item | credit_note
    Column("source", String(64), nullable=False),  # adjustment:ID | suggestion:ID
    Column("status", String(8), nullable=False),  # pending | sent | failed
    Column("stripe_id", String(255)),
    Column("invoice_id", String(255)),
    Column("error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    UniqueConstraint("tenant_id", "source"),
    Index("ix_true_ups_counter", "tenant_id", "metric", "customer_ref", "period_start"),
)

backfill_operations = Table(
    "backfill_operations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("status", String(12), nullable=False),  # pending | running | completed | failed
    Column("source_type", String(8), nullable=False),  # jsonl | csv
    Column("source_path", Text),
    Column("source_data", Text),
    Column("dry_run", Boolean, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("accepted", BigInteger, nullable=False),
    Column("duplicate", BigInteger, nullable=False),
    Column("held", BigInteger, nullable=False),
    Column("rejected", BigInteger, nullable=False),
    Column("conflict", BigInteger, nullable=False),
    Column("errors", JSON, nullable=False),
    Column("error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Index("ix_backfill_operations_tenant", "tenant_id", "created_at"),
)

# Alerts (issue 8): rules, their state per (rule, customer, metric), the history of transitions,
# the notifications owed to each channel, and the per-customer limits percent-of-limit rules use.

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("tenant_id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("type", String(24), nullable=False),
    Column("metric", String(100)),  # None = every metric (where the type has metrics)
    Column("customer_ref", String(255)),  # None = every customer
    Column("thresholds", JSON, nullable=False),  # ascending, decimals as strings
    Column("percent_of_limit", Boolean, nullable=False),
    Column("hysteresis_percent", Quantity, nullable=False),
    Column("channels", JSON, nullable=False),
    Column("renotify_after_seconds", Integer),
    Column("hard_cap", Boolean, nullable=False),
    Column("params", JSON, nullable=False),  # type-specific options (spike windows)
    Column("enabled", Boolean, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_alert_rules_tenant", "tenant_id", "created_at"),
)

# "" in customer_ref / metric: the state is not specific to a customer / metric.
alert_states = Table(
    "alert_states",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(64), nullable=False),
    Column("rule_id", String(40), nullable=False),
    Column("customer_ref", String(255), nullable=False),
    Column("metric", String(100), nullable=False),
    Column("status", String(16), nullable=False),  # triggered | acknowledged | resolved
    Column("level", Integer),  # index of the highest threshold reached; None when clear
    Column("value", Quantity),
    Column("threshold", Quantity),
    Column("snoozed_until", UTCDateTime),
    Column("notified_at", UTCDateTime),
    Column("notify_pending", Boolean, nullable=False),
    Column("triggered_at", UTCDateTime),
    Column("acknowledged_at", UTCDateTime),
    Column("acknowledged_by", String(64)),
    Column("resolved_at", UTCDateTime),
    Column("evaluated_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("rule_id", "customer_ref", "metric"),
    Index("ix_alert_states_tenant_status", "tenant_id", "status", "id"),
)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(64), nullable=False),
    Column("rule_id", String(40), nullable=False),
    Column("state_id", BigInteger, nullable=False),
    Column("rule_name", String(200), nullable=False),
    Column("rule_type", String(24), nullable=False),
    Column("customer_ref", String(255), nullable=False),
    Column("metric", String(100), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("from_status", String(16), nullable=False),
    Column("to_status", String(16), nullable=False),
    Column("value", Quantity),
    Column("threshold", Quantity),
    Column("level", Integer),
    Column("actor", String(64), nullable=False),
    Column("note", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_alert_events_tenant", "tenant_id", "id"),
    Index("ix_alert_events_state", "state_id", "id"),
)

alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("tenant_id", String(64), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("rule_id", String(40), nullable=False),
    Column("channel_type", String(8), nullable=False),  # webhook | email | slack | log
    Column("target", String(500), nullable=False),  # shown to users (no secrets)
    Column("channel", JSON, nullable=False),  # the channel as configured when the alert fired
    Column("payload", JSON, nullable=False),
    Column("status", String(12), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", Text),
    Column("response_code", Integer),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_alert_deliveries_work", "status", "next_attempt_at"),
    Index("ix_alert_deliveries_tenant", "tenant_id", "id"),
)

customer_limits = Table(
    "customer_limits",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("customer_ref", String(255), primary_key=True),
    Column("metric", String(100), primary_key=True),
    Column("limit_value", Quantity, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
