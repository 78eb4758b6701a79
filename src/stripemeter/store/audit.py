"""The audit log: who did what to which row, append-only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.store.tables import audit_log


async def record(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    details: dict[str, Any],
    request_id: str | None,
    now: datetime,
) -> None:
    """Append one entry in the caller's transaction, so it commits with the change it describes."""
    await conn.execute(
        audit_log.insert().values(
            tenant_id=tenant_id,
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=details,
            request_id=request_id,
            created_at=now,
        )
    )


async def list_entries(
    conn: AsyncConnection, tenant_id: str, *, before_id: int | None, limit: int
) -> list[RowMapping]:
    """A page of a tenant's entries, newest first."""
    query = (
        select(audit_log)
        .where(audit_log.c.tenant_id == tenant_id)
        .order_by(audit_log.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    return list((await conn.execute(query)).mappings())
