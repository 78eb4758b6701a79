"""Planner statistics for the tables ingest reads on every request (PostgreSQL).

A fresh database's tables have never been analysed, and until autovacuum gets to them (a minute or
more) PostgreSQL may plan a key probe as a scan of every row of the tenant: ingest then slows down
as the ledger grows. Housekeeping analyses those tables as soon as they hold rows but no statistics.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

HOT_TABLES = ("events", "counters", "billing_cycles", "closed_periods")
MIN_ROWS = 1000  # below this a scan costs no more than a probe

_NEVER_ANALYSED = text(
    "SELECT relname FROM pg_stat_user_tables"
    " WHERE relname = ANY(:tables) AND last_analyze IS NULL AND last_autoanalyze IS NULL"
    " AND n_live_tup + n_dead_tup >= :rows"
)


async def analyse_new_tables(conn: AsyncConnection) -> list[str]:
    """ANALYZE the hot tables that hold rows but were never analysed; returns their names."""
    if conn.dialect.name != "postgresql":
        return []
    rows = await conn.execute(_NEVER_ANALYSED, {"tables": list(HOT_TABLES), "rows": MIN_ROWS})
    names = [name for (name,) in rows if name in HOT_TABLES]
    for name in names:
        await conn.execute(text(f"ANALYZE {name}"))  # a name from HOT_TABLES, never user input
    return names
