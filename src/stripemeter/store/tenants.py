"""Tenants and their API keys (stored hashed)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.store import dialect
from stripemeter.store.tables import api_keys, tenants


async def ensure_tenant(conn: AsyncConnection, tenant_id: str, name: str, now: datetime) -> bool:
    """Create the tenant if it does not exist; True when it was created."""
    stmt = (
        dialect.insert(conn, tenants)
        .values(id=tenant_id, name=name, strict_metrics=False, created_at=now)
        .on_conflict_do_nothing(index_elements=["id"])
    )
    result = await conn.execute(stmt)
    return bool(result.rowcount)


async def get_tenant(conn: AsyncConnection, tenant_id: str) -> RowMapping | None:
    """One tenant by id."""
    return (await conn.execute(select(tenants).where(tenants.c.id == tenant_id))).mappings().first()


async def count_tenants(conn: AsyncConnection) -> int:
    """How many tenants exist (zero on a fresh database)."""
    return int((await conn.execute(select(func.count()).select_from(tenants))).scalar_one())


async def set_strict(conn: AsyncConnection, tenant_id: str, strict: bool) -> None:
    """Turn strict metric mode on or off."""
    await conn.execute(
        update(tenants).where(tenants.c.id == tenant_id).values(strict_metrics=strict)
    )


async def insert_key(conn: AsyncConnection, row: dict[str, object]) -> None:
    """Store a new key record (never the secret itself)."""
    await conn.execute(api_keys.insert().values(**row))


async def key_by_prefix(conn: AsyncConnection, prefix: str) -> RowMapping | None:
    """The key record whose public prefix is ``prefix``."""
    query = select(api_keys).where(api_keys.c.prefix == prefix)
    return (await conn.execute(query)).mappings().first()


async def list_keys(conn: AsyncConnection, tenant_id: str | None) -> list[RowMapping]:
    """Key records, oldest first, of one tenant or all."""
    query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
    if tenant_id is not None:
        query = query.where(api_keys.c.tenant_id == tenant_id)
    return list((await conn.execute(query)).mappings())


async def get_key(conn: AsyncConnection, key_id: str, tenant_id: str | None) -> RowMapping | None:
    """One key record by id (within a tenant when given)."""
    query = select(api_keys).where(api_keys.c.id == key_id)
    if tenant_id is not None:
        query = query.where(api_keys.c.tenant_id == tenant_id)
    return (await conn.execute(query)).mappings().first()


async def set_key_times(
    conn: AsyncConnection,
    key_id: str,
    *,
    revoked_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> None:
    """Revoke a key or move its expiry."""
    values: dict[str, datetime] = {}
    if revoked_at is not None:
        values["revoked_at"] = revoked_at
    if expires_at is not None:
        values["expires_at"] = expires_at
    await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(**values))
