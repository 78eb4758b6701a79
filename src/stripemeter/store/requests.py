"""Stored responses of requests sent with an ``Idempotency-Key`` header."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.store import dialect
from stripemeter.store.tables import idempotent_requests


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A response kept so a retry of the same request gets the same answer."""

    request_hash: str
    status_code: int
    body: str


async def claim(
    conn: AsyncConnection, tenant_id: str, key: str, request_hash: str, now: datetime
) -> bool:
    """Reserve the key for this request; False when another request holds it already.

    On PostgreSQL a concurrent holder makes this wait until it commits or rolls back.
    """
    stmt = (
        dialect.insert(conn, idempotent_requests)
        .values(
            tenant_id=tenant_id,
            key=key,
            request_hash=request_hash,
            status_code=0,
            response_body="",
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "key"])
    )
    return bool((await conn.execute(stmt)).rowcount)


async def complete(
    conn: AsyncConnection, tenant_id: str, key: str, status_code: int, body: str
) -> None:
    """Record the response of a claimed key (in the same transaction as the work)."""
    await conn.execute(
        update(idempotent_requests)
        .where(idempotent_requests.c.tenant_id == tenant_id, idempotent_requests.c.key == key)
        .values(status_code=status_code, response_body=body)
    )


async def find(conn: AsyncConnection, tenant_id: str, key: str) -> StoredResponse | None:
    """The stored response for a key, if its request finished."""
    row = (
        await conn.execute(
            select(
                idempotent_requests.c.request_hash,
                idempotent_requests.c.status_code,
                idempotent_requests.c.response_body,
            ).where(idempotent_requests.c.tenant_id == tenant_id, idempotent_requests.c.key == key)
        )
    ).first()
    if row is None:
        return None
    return StoredResponse(row[0], row[1], row[2])
