"""A small periodic loop for database-wide chores: gauges, and first statistics for new tables."""

from __future__ import annotations

import asyncio

import structlog

from stripemeter.observability import metrics
from stripemeter.services.background import BackgroundTask
from stripemeter.store import ledger, statistics
from stripemeter.store.database import Database

SAMPLE_INTERVAL = 5.0  # seconds between samples of database-wide gauges

log = structlog.get_logger("stripemeter.housekeeping")


class Housekeeping:
    """Samples database-wide gauges (held events awaiting review) and analyses new tables."""

    def __init__(self, db: Database, *, interval: float = SAMPLE_INTERVAL) -> None:
        self._db = db
        self._interval = interval
        self._task = BackgroundTask("stripemeter-housekeeping")

    def start(self) -> None:
        """Start sampling on the running loop."""
        self._task.start(self._run)

    async def stop(self) -> None:
        """Stop sampling."""
        await self._task.stop()

    async def sample(self) -> None:
        """Take one sample of every gauge, and refresh statistics that miss most of a table."""
        async with self._db.read() as conn:
            metrics.held_events_pending.set(await ledger.count_pending_held(conn))
        async with self._db.write() as conn:
            analysed = await statistics.analyse_stale_tables(conn)
        if analysed:
            log.info("tables_analysed", tables=analysed)

    async def _run(self) -> None:
        while True:
            try:
                await self.sample()
            except (
                Exception
            ) as exc:  # a failed sample must not stop the loop; the next one may work
                log.warning("housekeeping_sample_failed", error=type(exc).__name__)
            await asyncio.sleep(self._interval)
