"""The ingest read touches only the group's own rows, once housekeeping has refreshed statistics.

The worst case is a table analysed while empty that then fills: PostgreSQL believes it is empty
and may plan each series' lookup as a scan of the tenant's counters (32,000 rows read for a group
of 32 over 1,000 counters, before housekeeping's statistics pass).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from sqlalchemy import text

from stripemeter.api.app import Services
from stripemeter.store import ingest_state
from tests.integration._statistics import analyse_when_stale

COUNTERS = 1000  # the tenant's counters; a group of single events names a few of them
GROUP = 32


def _rows_read(plan: dict[str, Any], table: str) -> int:
    """Rows a plan's scans of ``table`` looked at (returned or filtered out, over every loop)."""
    node_rows = 0
    if plan.get("Relation Name") == table:
        looked = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
        node_rows = looked * plan.get("Actual Loops", 1)
    return node_rows + sum(_rows_read(child, table) for child in plan.get("Plans", ()))


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # SQLite reads by primary key
async def test_a_group_reads_its_own_counters_not_the_tenants_once_statistics_are_fresh(
    services: Services,
) -> None:
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    async with services.db.write() as conn:
        # The worst case, as on a fresh database: statistics say the table is empty, then it fills.
        await conn.execute(text("ANALYZE counters"))
        await conn.execute(
            text(
                "INSERT INTO counters (tenant_id, metric, customer_ref, period_start, period_end,"
                ' "sum", "count", updated_at, updated_minute)'
                " SELECT 'acme', 'api_calls', 'cus_' || g, :start, :end, 1, 1, :now, :now"
                " FROM generate_series(1, :n) AS g"
            ),
            {
                "start": datetime(2026, 11, 1, tzinfo=UTC),
                "end": datetime(2026, 12, 1, tzinfo=UTC),
                "now": now,
                "n": COUNTERS,
            },
        )
    await analyse_when_stale(services, "counters")
    async with services.db.read() as conn:
        refs = [f"cus_{n}" for n in range(1, GROUP + 1)]
        result = await conn.exec_driver_sql(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + ingest_state._PG_READ,
            (
                "acme",
                msgspec.json.encode(refs).decode(),
                msgspec.json.encode([["api_calls", r] for r in refs]).decode(),
                now,
                now,
                None,
            ),
        )
        plan = result.scalar_one()
    plan = plan if isinstance(plan, list) else msgspec.json.decode(plan)
    assert _rows_read(plan[0]["Plan"], "counters") <= 2 * GROUP
