"""Index counters by the minute they last changed, so ingest's counter updates can be HOT

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 03:40:00.000000

Every ingest rewrites ``updated_at``; while an index covered it, PostgreSQL could never update a
counter in place (a HOT update) and inserted a new entry in each of the table's three indexes per
change. The pusher's change scan now finds counters by ``updated_minute`` (stable for a minute)
and filters on ``updated_at`` exactly. Pages keep room for the new row versions (fillfactor).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stripemeter.store.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FILLFACTOR = 80


def upgrade() -> None:
    with op.batch_alter_table("counters") as batch_op:
        batch_op.add_column(
            sa.Column(
                "updated_minute",
                stripemeter.store.types.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE counters SET updated_minute = date_trunc('minute', updated_at)")
    else:  # SQLite stores naive UTC text, 'YYYY-MM-DD HH:MM:SS.ffffff'
        op.execute(
            sa.text(
                "UPDATE counters SET updated_minute = substr(updated_at, 1, 16) || :seconds"
            ).bindparams(seconds=":00.000000")
        )
    with op.batch_alter_table("counters") as batch_op:
        batch_op.alter_column("updated_minute", nullable=False)
        batch_op.drop_index("ix_counters_tenant_updated")
        batch_op.create_index(
            "ix_counters_updated_minute_tenant",
            ["updated_minute", "tenant_id"],
            unique=False,
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE counters SET (fillfactor = {_FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE counters RESET (fillfactor)")
    with op.batch_alter_table("counters") as batch_op:
        batch_op.drop_index("ix_counters_updated_minute_tenant")
        batch_op.create_index(
            "ix_counters_tenant_updated", ["tenant_id", "updated_at"], unique=False
        )
        batch_op.drop_column("updated_minute")
