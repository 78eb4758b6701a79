"""Index only held events by status: accepted events, nearly all of them, no longer pay for it

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 00:45:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HELD = sa.text("status = 'held'")


def upgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_index("ix_events_tenant_status")
        batch_op.create_index(
            "ix_events_held",
            ["tenant_id", "id"],
            unique=False,
            postgresql_where=_HELD,
            sqlite_where=_HELD,
        )


def downgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_index("ix_events_held")
        batch_op.create_index(
            "ix_events_tenant_status", ["tenant_id", "status", "id"], unique=False
        )
