"""Helper shared by the statistics and plan tests: run housekeeping's pass until it takes a table."""

from __future__ import annotations

import asyncio

from stripemeter.api.app import Services
from stripemeter.store import statistics


async def analyse_when_stale(services: Services, table: str) -> list[str]:
    """The tables housekeeping's pass analysed on the first pass that took ``table``."""
    for _ in range(50):  # the activity statistics reach pg_stat_user_tables within a second
        async with services.db.write() as conn:
            analysed = await statistics.analyse_stale_tables(conn)
        if table in analysed:
            return analysed
        await asyncio.sleep(0.1)
    raise AssertionError(f"housekeeping never analysed {table}")
