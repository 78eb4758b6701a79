"""Billing cycles: a customer's Stripe billing-cycle anchor, which keys its counters

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 00:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stripemeter.store.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_cycles",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("customer_ref", sa.String(length=255), nullable=False),
        sa.Column("anchor", stripemeter.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("interval", sa.String(length=8), nullable=True),
        sa.Column("interval_count", sa.Integer(), nullable=True),
        sa.Column("stripe_customer_id", sa.String(length=100), nullable=True),
        sa.Column("subscription_id", sa.String(length=100), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("checked_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", stripemeter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "customer_ref", name=op.f("pk_billing_cycles")),
    )


def downgrade() -> None:
    op.drop_table("billing_cycles")
