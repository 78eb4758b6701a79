"""Housekeeping gives the tables ingest probes their first planner statistics."""

from __future__ import annotations

from sqlalchemy import text

from stripemeter.api.app import Services
from stripemeter.store import statistics
from tests.integration._statistics import analyse_when_stale


async def _last_analyzed(services: Services, table: str) -> object:
    async with services.db.read() as conn:
        row = await conn.execute(
            text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = :t"), {"t": table}
        )
        return row.scalar()


async def test_new_tables_with_rows_are_analysed_once(services: Services, backend: str) -> None:
    if backend == "sqlite":
        async with services.db.write() as conn:
            assert await statistics.analyse_stale_tables(conn) == []  # SQLite has nothing to do
        return
    async with services.db.write() as conn:
        # The session's database may have been analysed by an earlier test's housekeeping.
        await conn.execute(text("SELECT pg_stat_reset_single_table_counters('events'::regclass)"))
        await conn.execute(
            text(
                "INSERT INTO events (tenant_id, idempotency_key, payload_hash, metric, customer_ref,"
                " quantity, ts, ts_text, period_start, status, source, meta, received_at)"
                " SELECT 't', 'k' || g, 'h', 'm', 'c', 1, now(), 'x', now(), 'accepted', 'http',"
                " '{}', now() FROM generate_series(1, :n) AS g"
            ),
            {"n": statistics.MIN_ROWS},
        )
    analysed = await analyse_when_stale(services, "events")
    assert "events" in analysed
    assert await _last_analyzed(services, "events") is not None
    async with services.db.write() as conn:
        assert "events" not in await statistics.analyse_stale_tables(conn)
