"""Planner statistics for the tables ingest reads on every request (PostgreSQL).

PostgreSQL plans ingest's per-key and per-series lookups well only while its statistics roughly
know a table's size. A fresh database's tables have none, and a table analysed while nearly empty
(a new tenant, a truncate) looks empty until autovacuum gets to it (a minute or more): a lookup may
then be planned as a scan of every row of the tenant, and ingest slows down as the table grows.
Housekeeping analyses those tables as soon as they hold rows the statistics do not account for.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

HOT_TABLES = ("events", "counters", "billing_cycles", "closed_periods")
MIN_ROWS = 1000  # below this a scan costs no more than a probe

# Never analysed (reltuples is -1), or at least twice the rows the last analysis counted: the
# statistics are refreshed each time a table doubles, however it grew.
_STALE = text(
    "SELECT s.relname FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid"
    " WHERE s.relname = ANY(:tables) AND s.n_live_tup + s.n_dead_tup >= :rows"
    " AND (s.last_analyze IS NULL AND s.last_autoanalyze IS NULL"
    " OR s.n_live_tup >= 2 * c.reltuples)"
)


async def analyse_stale_tables(conn: AsyncConnection) -> list[str]:
    """ANALYZE the hot tables whose statistics miss most of their rows; returns their names."""
    if conn.dialect.name != "postgresql":
        return []
    rows = await conn.execute(_STALE, {"tables": list(HOT_TABLES), "rows": MIN_ROWS})
    names = [name for (name,) in rows if name in HOT_TABLES]
    for name in names:
        await conn.execute(text(f"ANALYZE {name}"))  # a name from HOT_TABLES, never user input
    return names
