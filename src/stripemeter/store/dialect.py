"""The few statements that differ between SQLite and PostgreSQL."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, bindparam, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert(conn: AsyncConnection, table: Table) -> Any:
    """An INSERT that knows ON CONFLICT for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


@functools.lru_cache(maxsize=1 << 16)  # ingest asks for two per series per group; names repeat
def lock_id(name: str) -> int:
    """A stable signed 64-bit advisory-lock id for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def lock_names(conn: AsyncConnection, names: Iterable[str]) -> None:
    """Take transaction-scoped advisory locks in one global order (PostgreSQL; SQLite serialises writers).

    Sorting the ids is what keeps concurrent transactions that share names from deadlocking.
    """
    if conn.dialect.name != "postgresql":
        return
    ids = sorted({lock_id(name) for name in names})
    if not ids:
        return
    # unnest() yields the array in order, so the locks are taken in sorted order.
    stmt = text("SELECT count(pg_advisory_xact_lock(x)) FROM unnest(:ids) AS x").bindparams(
        bindparam("ids", type_=postgresql.ARRAY(postgresql.BIGINT))
    )
    await conn.execute(stmt, {"ids": ids})


async def try_lock_name(conn: AsyncConnection, name: str) -> bool:
    """Take a transaction-scoped singleton lock if free (always granted on SQLite)."""
    if conn.dialect.name != "postgresql":
        return True
    result = await conn.execute(
        text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": lock_id(name)}
    )
    return bool(result.scalar())
