"""Console sessions: stored by the hash of their cookie token, joined with the key that opened them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.store.tables import api_keys, ui_sessions


async def insert_session(
    conn: AsyncConnection,
    *,
    token_hash: str,
    tenant_id: str,
    key_id: str,
    csrf_token: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Open a session."""
    await conn.execute(
        ui_sessions.insert().values(
            token_hash=token_hash,
            tenant_id=tenant_id,
            key_id=key_id,
            csrf_token=csrf_token,
            created_at=now,
            expires_at=expires_at,
        )
    )


async def get_session(conn: AsyncConnection, token_hash: str) -> RowMapping | None:
    """A session with its key's tenant, scopes, expiry and revocation (None if unknown)."""
    query = (
        select(
            ui_sessions.c.tenant_id,
            ui_sessions.c.key_id,
            ui_sessions.c.csrf_token,
            ui_sessions.c.created_at,
            ui_sessions.c.expires_at,
            api_keys.c.tenant_id.label("key_tenant_id"),
            api_keys.c.name.label("key_name"),
            api_keys.c.prefix.label("key_prefix"),
            api_keys.c.scopes,
            api_keys.c.expires_at.label("key_expires_at"),
            api_keys.c.revoked_at.label("key_revoked_at"),
        )
        .join(api_keys, api_keys.c.id == ui_sessions.c.key_id)
        .where(ui_sessions.c.token_hash == token_hash)
    )
    return (await conn.execute(query)).mappings().first()


async def delete_session(conn: AsyncConnection, token_hash: str) -> None:
    """Close one session."""
    await conn.execute(delete(ui_sessions).where(ui_sessions.c.token_hash == token_hash))


async def delete_expired(conn: AsyncConnection, now: datetime) -> int:
    """Remove sessions past their expiry; returns how many."""
    result = await conn.execute(delete(ui_sessions).where(ui_sessions.c.expires_at <= now))
    return int(result.rowcount or 0)
