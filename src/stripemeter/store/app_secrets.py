"""Secrets generated once per database: insert if absent, then read what won."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.store.dialect import insert
from stripemeter.store.tables import app_secrets


async def get_or_create(conn: AsyncConnection, name: str, candidate: str, now: datetime) -> str:
    """The stored secret ``name``; ``candidate`` becomes it only if none exists yet.

    ``ON CONFLICT DO NOTHING`` makes concurrent first starts agree: one insert wins, every process
    reads the winner.
    """
    stmt = insert(conn, app_secrets).values(name=name, value=candidate, created_at=now)
    await conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
    value = await conn.scalar(select(app_secrets.c.value).where(app_secrets.c.name == name))
    assert value is not None
    return str(value)
