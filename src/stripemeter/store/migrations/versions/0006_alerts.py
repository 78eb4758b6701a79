"""Alerts: rules, states per (rule, customer, metric), transition history, deliveries, customer limits

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 22:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stripemeter.store.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_deliveries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("rule_id", sa.String(length=40), nullable=False),
        sa.Column("channel_type", sa.String(length=8), nullable=False),
        sa.Column("target", sa.String(length=500), nullable=False),
        sa.Column("channel", sa.JSON(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "next_attempt_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column(
            "lease_expires_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("created_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "delivered_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("updated_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_deliveries")),
    )
    with op.batch_alter_table("alert_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_alert_deliveries_tenant", ["tenant_id", "id"], unique=False)
        batch_op.create_index(
            "ix_alert_deliveries_work", ["status", "next_attempt_at"], unique=False
        )

    op.create_table(
        "alert_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.String(length=40), nullable=False),
        sa.Column("state_id", sa.BigInteger(), nullable=False),
        sa.Column("rule_name", sa.String(length=200), nullable=False),
        sa.Column("rule_type", sa.String(length=24), nullable=False),
        sa.Column("customer_ref", sa.String(length=255), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=False),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("value", stripemeter.store.types.Quantity(length=64), nullable=True),
        sa.Column("threshold", stripemeter.store.types.Quantity(length=64), nullable=True),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_events")),
    )
    with op.batch_alter_table("alert_events", schema=None) as batch_op:
        batch_op.create_index("ix_alert_events_state", ["state_id", "id"], unique=False)
        batch_op.create_index("ix_alert_events_tenant", ["tenant_id", "id"], unique=False)

    op.create_table(
        "alert_rules",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=True),
        sa.Column("customer_ref", sa.String(length=255), nullable=True),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("percent_of_limit", sa.Boolean(), nullable=False),
        sa.Column(
            "hysteresis_percent", stripemeter.store.types.Quantity(length=64), nullable=False
        ),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("renotify_after_seconds", sa.Integer(), nullable=True),
        sa.Column("hard_cap", sa.Boolean(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rules")),
    )
    with op.batch_alter_table("alert_rules", schema=None) as batch_op:
        batch_op.create_index("ix_alert_rules_tenant", ["tenant_id", "created_at"], unique=False)

    op.create_table(
        "alert_states",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.String(length=40), nullable=False),
        sa.Column("customer_ref", sa.String(length=255), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("value", stripemeter.store.types.Quantity(length=64), nullable=True),
        sa.Column("threshold", stripemeter.store.types.Quantity(length=64), nullable=True),
        sa.Column(
            "snoozed_until", stripemeter.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("notified_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("notify_pending", sa.Boolean(), nullable=False),
        sa.Column(
            "triggered_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "acknowledged_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("resolved_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "evaluated_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("updated_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_states")),
        sa.UniqueConstraint(
            "rule_id",
            "customer_ref",
            "metric",
            name=op.f("uq_alert_states_rule_id_customer_ref_metric"),
        ),
    )
    with op.batch_alter_table("alert_states", schema=None) as batch_op:
        batch_op.create_index(
            "ix_alert_states_tenant_status", ["tenant_id", "status", "id"], unique=False
        )

    op.create_table(
        "customer_limits",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("customer_ref", sa.String(length=255), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("limit_value", stripemeter.store.types.Quantity(length=64), nullable=False),
        sa.Column("updated_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "customer_ref", "metric", name=op.f("pk_customer_limits")
        ),
    )


def downgrade() -> None:
    op.drop_table("customer_limits")
    with op.batch_alter_table("alert_states", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_states_tenant_status")

    op.drop_table("alert_states")
    with op.batch_alter_table("alert_rules", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_rules_tenant")

    op.drop_table("alert_rules")
    with op.batch_alter_table("alert_events", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_events_tenant")
        batch_op.drop_index("ix_alert_events_state")

    op.drop_table("alert_events")
    with op.batch_alter_table("alert_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_deliveries_work")
        batch_op.drop_index("ix_alert_deliveries_tenant")

    op.drop_table("alert_deliveries")
