"""Reconciliation and repair: drift reports, runs, history, suggestions, webhook events, invoice
parity, alerts, closed periods, true-ups, backfill operations

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 21:54:14.631563
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stripemeter.store.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backfill_operations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("source_type", sa.String(length=8), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=True),
        sa.Column("source_data", sa.Text(), nullable=True),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("accepted", sa.BigInteger(), nullable=False),
        sa.Column("duplicate", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("conflict", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfill_operations")),
    )
    with op.batch_alter_table("backfill_operations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_backfill_operations_tenant", ["tenant_id", "created_at"], unique=False
        )

    op.create_table(
        "billing_alerts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_alerts")),
    )
    with op.batch_alter_table("billing_alerts", schema=None) as batch_op:
        batch_op.create_index("ix_billing_alerts_tenant", ["tenant_id", "id"], unique=False)

    op.create_table(
        "closed_periods",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("customer_ref", sa.String(length=255), nullable=False),
        sa.Column(
            "period_start", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("period_end", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("invoice_id", sa.String(length=255), nullable=True),
        sa.Column("closed_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "customer_ref", "period_start", name=op.f("pk_closed_periods")
        ),
    )
    op.create_table(
        "invoice_parity",
        sa.Column("invoice_id", sa.String(length=255), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=100), nullable=False),
        sa.Column("customer_ref", sa.String(length=255), nullable=False),
        sa.Column(
            "period_start", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("period_end", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("policy", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("created_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("invoice_id", name=op.f("pk_invoice_parity")),
    )
    with op.batch_alter_table("invoice_parity", schema=None) as batch_op:
        batch_op.create_index(
            "ix_invoice_parity_tenant", ["tenant_id", "customer_ref", "period_start"], unique=False
        )

    op.create_table(
        "reconciliation_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("report_id", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("local_total", stripemeter.store.types.Quantity(length=64), nullable=False),
        sa.Column("pushed_total", stripemeter.store.types.Quantity(length=64), nullable=True),
        sa.Column("stripe_total", stripemeter.store.types.Quantity(length=64), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("checked_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_history")),
    )
    with op.batch_alter_table("reconciliation_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reconciliation_history_report", ["tenant_id", "report_id", "id"], unique=False
        )

    op.create_table(
        "reconciliation_reports",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("mapping_id", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=8), nullable=False),
        sa.Column("customer_ref", sa.String(length=255), nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=100), nullable=True),
        sa.Column(
            "period_start", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("period_end", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("local_total", stripemeter.store.types.Quantity(length=64), nullable=False),
        sa.Column("pushed_total", stripemeter.store.types.Quantity(length=64), nullable=True),
        sa.Column("stripe_total", stripemeter.store.types.Quantity(length=64), nullable=True),
        sa.Column("trued_up", stripemeter.store.types.Quantity(length=64), nullable=False),
        sa.Column("drift_abs", stripemeter.store.types.Quantity(length=64), nullable=True),
        sa.Column("drift_pct", stripemeter.store.types.Quantity(length=64), nullable=True),
        sa.Column("epsilon", stripemeter.store.types.Quantity(length=64), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("checked_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_reports")),
        sa.UniqueConstraint(
            "tenant_id",
            "metric",
            "mapping_id",
            "target",
            "customer_ref",
            "period_start",
            name=op.f(
                "uq_reconciliation_reports_tenant_id_metric_mapping_id_target_customer_ref_period_start"
            ),
        ),
    )
    with op.batch_alter_table("reconciliation_reports", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reconciliation_reports_tenant_period", ["tenant_id", "period_start"], unique=False
        )
        batch_op.create_index(
            "ix_reconciliation_reports_tenant_status", ["tenant_id", "status"], unique=False
        )

    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("customer_ref", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_runs")),
    )
    with op.batch_alter_table("reconciliation_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reconciliation_runs_tenant", ["tenant_id", "started_at"], unique=False
        )

    op.create_table(
        "reconciliation_settings",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("mapping_id", sa.String(length=40), nullable=False),
        sa.Column("epsilon", stripemeter.store.types.Quantity(length=64), nullable=True),
        sa.Column("gate_policy", sa.String(length=8), nullable=True),
        sa.Column("allow_self_approval", sa.Boolean(), nullable=True),
        sa.Column("updated_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "mapping_id", name=op.f("pk_reconciliation_settings")),
    )
    op.create_table(
        "reconciliation_suggestions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("report_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("delta", stripemeter.store.types.Quantity(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("applied_by", sa.String(length=64), nullable=True),
        sa.Column("applied_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_suggestions")),
        sa.UniqueConstraint("report_id", name=op.f("uq_reconciliation_suggestions_report_id")),
    )
    with op.batch_alter_table("reconciliation_suggestions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reconciliation_suggestions_tenant", ["tenant_id", "status"], unique=False
        )

    op.create_table(
        "stripe_webhook_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("tenant_hint", sa.String(length=64), nullable=True),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("stripe_created", sa.BigInteger(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column(
            "lease_expires_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "received_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "processed_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_webhook_events")),
    )
    with op.batch_alter_table("stripe_webhook_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stripe_webhook_events_status", ["status", "received_at"], unique=False
        )

    op.create_table(
        "true_ups",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("mapping_id", sa.String(length=40), nullable=False),
        sa.Column("customer_ref", sa.String(length=255), nullable=False),
        sa.Column(
            "period_start", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("quantity", stripemeter.store.types.Quantity(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("stripe_id", sa.String(length=255), nullable=True),
        sa.Column("invoice_id", sa.String(length=255), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_true_ups")),
        sa.UniqueConstraint("tenant_id", "source", name=op.f("uq_true_ups_tenant_id_source")),
    )
    with op.batch_alter_table("true_ups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_true_ups_counter",
            ["tenant_id", "metric", "customer_ref", "period_start"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("true_ups", schema=None) as batch_op:
        batch_op.drop_index("ix_true_ups_counter")

    op.drop_table("true_ups")
    with op.batch_alter_table("stripe_webhook_events", schema=None) as batch_op:
        batch_op.drop_index("ix_stripe_webhook_events_status")

    op.drop_table("stripe_webhook_events")
    with op.batch_alter_table("reconciliation_suggestions", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliation_suggestions_tenant")

    op.drop_table("reconciliation_suggestions")
    op.drop_table("reconciliation_settings")
    with op.batch_alter_table("reconciliation_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliation_runs_tenant")

    op.drop_table("reconciliation_runs")
    with op.batch_alter_table("reconciliation_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliation_reports_tenant_status")
        batch_op.drop_index("ix_reconciliation_reports_tenant_period")

    op.drop_table("reconciliation_reports")
    with op.batch_alter_table("reconciliation_history", schema=None) as batch_op:
        batch_op.drop_index("ix_reconciliation_history_report")

    op.drop_table("reconciliation_history")
    with op.batch_alter_table("invoice_parity", schema=None) as batch_op:
        batch_op.drop_index("ix_invoice_parity_tenant")

    op.drop_table("invoice_parity")
    op.drop_table("closed_periods")
    with op.batch_alter_table("billing_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_alerts_tenant")

    op.drop_table("billing_alerts")
    with op.batch_alter_table("backfill_operations", schema=None) as batch_op:
        batch_op.drop_index("ix_backfill_operations_tenant")

    op.drop_table("backfill_operations")
