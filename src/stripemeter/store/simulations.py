"""Simulation scenarios, runs and batches, every query scoped by tenant; and the scratch tenants."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.store.tables import (
    counters,
    events,
    idempotent_requests,
    metric_settings,
    simulation_batches,
    simulation_runs,
    simulation_scenarios,
)

SCRATCH_PREFIX = "sim-"  # tenants a simulation run owns; nothing else may use this prefix


async def insert_scenario(conn: AsyncConnection, row: dict[str, Any]) -> None:
    """Store a new scenario."""
    await conn.execute(simulation_scenarios.insert().values(**row))


async def get_scenario(
    conn: AsyncConnection, tenant_id: str, scenario_id: str
) -> RowMapping | None:
    """A scenario of the tenant (active or not), or None."""
    query = select(simulation_scenarios).where(
        simulation_scenarios.c.tenant_id == tenant_id, simulation_scenarios.c.id == scenario_id
    )
    return (await conn.execute(query)).mappings().first()


async def list_scenarios(
    conn: AsyncConnection, tenant_id: str, *, active: bool | None, limit: int, offset: int
) -> tuple[list[RowMapping], int]:
    """A page of the tenant's scenarios, newest first, and how many match in all."""
    where = [simulation_scenarios.c.tenant_id == tenant_id]
    if active is not None:
        where.append(simulation_scenarios.c.active == active)
    total = (
        await conn.execute(select(func.count()).select_from(simulation_scenarios).where(*where))
    ).scalar_one()
    query = (
        select(simulation_scenarios)
        .where(*where)
        .order_by(simulation_scenarios.c.created_at.desc(), simulation_scenarios.c.id)
        .limit(limit)
        .offset(offset)
    )
    return list((await conn.execute(query)).mappings()), int(total)


async def update_scenario(
    conn: AsyncConnection, tenant_id: str, scenario_id: str, values: dict[str, Any]
) -> bool:
    """Change a scenario of the tenant; False when it does not exist."""
    result = await conn.execute(
        update(simulation_scenarios)
        .where(
            simulation_scenarios.c.tenant_id == tenant_id,
            simulation_scenarios.c.id == scenario_id,
        )
        .values(**values)
    )
    return bool(result.rowcount)


async def insert_run(conn: AsyncConnection, row: dict[str, Any]) -> None:
    """Store a finished run."""
    await conn.execute(simulation_runs.insert().values(**row))


async def get_run(conn: AsyncConnection, tenant_id: str, run_id: str) -> RowMapping | None:
    """A run of the tenant, or None."""
    query = select(simulation_runs).where(
        simulation_runs.c.tenant_id == tenant_id, simulation_runs.c.id == run_id
    )
    return (await conn.execute(query)).mappings().first()


async def list_runs(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    scenario_id: str | None = None,
    batch_id: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> tuple[list[RowMapping], int]:
    """A page of the tenant's runs, newest first, and how many match in all."""
    where = [simulation_runs.c.tenant_id == tenant_id]
    if scenario_id is not None:
        where.append(simulation_runs.c.scenario_id == scenario_id)
    if batch_id is not None:
        where.append(simulation_runs.c.batch_id == batch_id)
    total = (
        await conn.execute(select(func.count()).select_from(simulation_runs).where(*where))
    ).scalar_one()
    query = (
        select(simulation_runs)
        .where(*where)
        .order_by(simulation_runs.c.created_at.desc(), simulation_runs.c.id)
        .limit(limit)
        .offset(offset)
    )
    return list((await conn.execute(query)).mappings()), int(total)


async def insert_batch(conn: AsyncConnection, row: dict[str, Any]) -> None:
    """Store a finished batch."""
    await conn.execute(simulation_batches.insert().values(**row))


async def get_batch(conn: AsyncConnection, tenant_id: str, batch_id: str) -> RowMapping | None:
    """A batch of the tenant, or None."""
    query = select(simulation_batches).where(
        simulation_batches.c.tenant_id == tenant_id, simulation_batches.c.id == batch_id
    )
    return (await conn.execute(query)).mappings().first()


async def purge_scratch_tenant(conn: AsyncConnection, tenant_id: str) -> None:
    """Remove what a simulation's ingest wrote for its own scratch tenant (``sim-…`` only).

    A scratch tenant holds no real usage: it exists for one run so that the run goes through the
    real ingest path. Real tenants' ledgers are never deleted from; the prefix check enforces it.
    """
    if not tenant_id.startswith(SCRATCH_PREFIX):
        raise ValueError(f"refusing to purge {tenant_id!r}: not a simulation tenant")
    for table in (events, counters, metric_settings, idempotent_requests):
        await conn.execute(delete(table).where(table.c.tenant_id == tenant_id))
