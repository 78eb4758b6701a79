"""Pricing: prices configured on metrics; invoice simulator scenarios, batches and runs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 21:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stripemeter.store.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UTC = stripemeter.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "metric_prices",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=100), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("price", sa.JSON(), nullable=False),
        sa.Column("minimum_amount", sa.BigInteger(), nullable=True),
        sa.Column("maximum_amount", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "metric", name=op.f("pk_metric_prices")),
    )
    op.create_table(
        "simulation_scenarios",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_simulation_scenarios")),
    )
    with op.batch_alter_table("simulation_scenarios", schema=None) as batch_op:
        batch_op.create_index(
            "ix_simulation_scenarios_tenant", ["tenant_id", "active", "created_at"], unique=False
        )
    op.create_table(
        "simulation_batches",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("scenario_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("completed_at", _UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_simulation_batches")),
    )
    with op.batch_alter_table("simulation_batches", schema=None) as batch_op:
        batch_op.create_index(
            "ix_simulation_batches_tenant", ["tenant_id", "created_at"], unique=False
        )
    op.create_table(
        "simulation_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("scenario_id", sa.String(length=40), nullable=True),
        sa.Column("batch_id", sa.String(length=40), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("scenario_snapshot", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("completed_at", _UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_simulation_runs")),
    )
    with op.batch_alter_table("simulation_runs", schema=None) as batch_op:
        batch_op.create_index("ix_simulation_runs_batch", ["tenant_id", "batch_id"], unique=False)
        batch_op.create_index(
            "ix_simulation_runs_tenant", ["tenant_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("simulation_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_simulation_runs_tenant")
        batch_op.drop_index("ix_simulation_runs_batch")
    op.drop_table("simulation_runs")
    with op.batch_alter_table("simulation_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_simulation_batches_tenant")
    op.drop_table("simulation_batches")
    with op.batch_alter_table("simulation_scenarios", schema=None) as batch_op:
        batch_op.drop_index("ix_simulation_scenarios_tenant")
    op.drop_table("simulation_scenarios")
    op.drop_table("metric_prices")
