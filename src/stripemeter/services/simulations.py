"""Run scenarios: feed their events through the real ingest path, price the counters, compare.

Each run gets its own scratch tenant (``sim-<run id>``), so the events meet the same validation,
derived idempotency keys, deduplication and lateness rules as production traffic, and the invoice
is priced from the counters ingest produced, not from a sum the scenario states. The scratch
tenant's rows are removed when the run ends; nothing is written to the caller's tenant but the run.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from stripemeter.domain.errors import InvalidInput, NotFound, StripeMeterError
from stripemeter.domain.events import EventLimits, Source
from stripemeter.domain.pricing import (
    ChargeLimits,
    Invoice,
    InvoiceRequest,
    InvoiceSimulator,
    UsageItem,
    compare_invoices,
    to_major_units,
)
from stripemeter.domain.times import parse_event_time
from stripemeter.services.catalog import MetricCatalog
from stripemeter.services.ingest import IngestReport, IngestService
from stripemeter.services.invoice_views import invoice_view, jsonable
from stripemeter.services.scenarios import Scenario, parse_scenario
from stripemeter.store import counters, metric_settings, simulations, tenants
from stripemeter.store.counters import state_from_row
from stripemeter.store.database import Database
from stripemeter.store.simulations import SCRATCH_PREFIX

DEFAULT_LATENESS_WINDOW = timedelta(hours=48)
MAX_BATCH_SCENARIOS = 100
MAX_PAGE = 100
MAX_OFFSET = 1_000_000


def _utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A random, URL-safe identifier with a type prefix."""
    return f"{prefix}_{secrets.token_hex(10)}"


@dataclass(frozen=True, slots=True)
class ScenarioOutcome:
    """A scenario's result as a JSON-ready document, and whether every expectation held."""

    passed: bool
    result: dict[str, Any]


class ScenarioRunner:
    """Runs one scenario end to end against a database (through ``IngestService``)."""

    def __init__(
        self,
        db: Database,
        *,
        default_window: timedelta = DEFAULT_LATENESS_WINDOW,
        limits: EventLimits | None = None,
    ) -> None:
        self._db = db
        self._default_window = default_window
        self._limits = limits or EventLimits()
        self._simulator = InvoiceSimulator()

    async def run(self, scenario: Scenario, *, run_id: str | None = None) -> ScenarioOutcome:
        """Ingest the events in a scratch tenant, price every customer's invoice, compare."""
        tenant = f"{SCRATCH_PREFIX}{run_id or secrets.token_hex(10)}"
        async with self._db.read() as conn:
            if await tenants.get_tenant(conn, tenant) is not None:
                raise InvalidInput(f"tenant {tenant} exists; refusing to use it as scratch space")
        try:
            report = await self._ingest(tenant, scenario)
            quantities = await self._quantities(tenant, scenario)
        finally:
            async with self._db.write() as conn:
                await simulations.purge_scratch_tenant(conn, tenant)
        return self._price(scenario, report, quantities)

    async def _ingest(self, tenant: str, scenario: Scenario) -> IngestReport:
        now = _utcnow()
        async with self._db.write() as conn:
            for metric, spec in scenario.metrics.items():
                window = spec.lateness_window or self._default_window
                await metric_settings.upsert(
                    conn,
                    tenant,
                    metric,
                    aggregation=spec.aggregation.value,
                    lateness_window_seconds=int(window.total_seconds()),
                    unit="unit",
                    description="",
                    now=now,
                )
        # The scratch tenant's clock stands at the period end (or the latest event), so that
        # every event of the scenario is in the past when it arrives, as in a replayed month.
        latest = max(
            (parse_event_time(e["ts"]).at for e in scenario.events if isinstance(e["ts"], str)),
            default=scenario.period.end,
        )
        arrival = max(scenario.period.end, latest)
        catalog = MetricCatalog(self._db, self._default_window, ttl=0)
        ingest = IngestService(self._db, catalog, self._limits, clock=lambda: arrival, writers=1)
        ingest.start()
        try:
            return await ingest.ingest(tenant, list(scenario.events), default_source=Source.IMPORT)
        finally:
            await ingest.stop()

    async def _quantities(self, tenant: str, scenario: Scenario) -> dict[str, dict[str, Decimal]]:
        catalog = MetricCatalog(self._db, self._default_window, ttl=0)
        settings = await catalog.for_tenant(tenant)
        found: dict[str, dict[str, Decimal]] = {}
        async with self._db.read() as conn:
            for ref in scenario.customers:
                rows = await counters.for_customer(conn, tenant, ref, scenario.period.start)
                found[ref] = {
                    row["metric"]: state_from_row(row).value(
                        settings.get(row["metric"]).aggregation
                    )
                    for row in rows
                }
        return found

    def _request(
        self, scenario: Scenario, ref: str, quantities: dict[str, Decimal]
    ) -> InvoiceRequest:
        customer = scenario.customers[ref]
        return InvoiceRequest(
            customer_id=ref,
            period=scenario.period,
            items=tuple(
                UsageItem(
                    metric,
                    quantities.get(metric, Decimal(0)),
                    price,
                    scenario.limits.get(metric, ChargeLimits()),
                )
                for metric, price in sorted(scenario.prices.items())
            ),
            currency=scenario.currency,
            commitments=customer.commitments,
            credits=customer.credits,
            tax_rate=customer.tax_rate,
        )

    def _price(
        self,
        scenario: Scenario,
        report: IngestReport,
        quantities: dict[str, dict[str, Decimal]],
    ) -> ScenarioOutcome:
        differences = 0
        ingest_diffs = []
        if scenario.expected_ingest is not None:
            for status, want in scenario.expected_ingest.items():
                got = report.totals.get(status, 0)
                if got != want:
                    ingest_diffs.append(
                        {"field": f"ingest.{status}", "expected": want, "actual": got}
                    )
        differences += len(ingest_diffs)
        invoices = []
        what_if = []
        for ref in sorted(scenario.customers):
            request = self._request(scenario, ref, quantities.get(ref, {}))
            invoice = self._simulator.simulate(request)
            entry: dict[str, Any] = {"customerRef": ref, "invoice": invoice_view(invoice)}
            expected = scenario.expected.get(ref)
            if expected is not None:
                comparison = compare_invoices(expected, invoice, scenario.tolerances)
                entry["checked"] = True
                entry["expectedTotal"] = expected.total
                entry["passed"] = comparison.passed
                entry["differences"] = [
                    {"field": d.field, "expected": d.expected, "actual": d.actual, "gap": d.gap}
                    for d in comparison.differences
                ]
                differences += len(comparison.differences)
            else:
                entry |= {
                    "checked": False,
                    "expectedTotal": None,
                    "passed": None,
                    "differences": [],
                }
            invoices.append(entry)
            if scenario.what_if is not None:
                what_if.append(_what_if(ref, *self._simulator.what_if(request, scenario.what_if)))
        result = {
            "scenario": scenario.name,
            "period": {"start": scenario.period.start, "end": scenario.period.end},
            "currency": scenario.currency.code,
            "ingest": {
                "totals": report.totals,
                "expected": scenario.expected_ingest,
                "differences": ingest_diffs,
                "notAccepted": [
                    {
                        "index": r.index,
                        "status": r.status,
                        "reason": r.reason or r.code,
                        "message": r.message,
                        "idempotencyKey": r.idempotency_key,
                    }
                    for r in report.results
                    if r.status != "accepted"
                ],
            },
            "invoices": invoices,
            "whatIf": what_if or None,
            "passed": differences == 0,
            "differenceCount": differences,
        }
        return ScenarioOutcome(differences == 0, jsonable(result))


def _what_if(ref: str, now: Invoice, changed: Invoice) -> dict[str, Any]:
    cur = now.currency
    return {
        "customerRef": ref,
        "currentTotal": to_major_units(now.total, cur),
        "newTotal": to_major_units(changed.total, cur),
        "difference": to_major_units(changed.total - now.total, cur),
        "differenceMinor": changed.total - now.total,
        "lines": [
            {
                "metric": old.metric,
                "current": to_major_units(old.amount, cur),
                "new": to_major_units(new.amount, cur),
                "difference": to_major_units(new.amount - old.amount, cur),
            }
            for old, new in zip(now.lines, changed.lines, strict=True)
        ],
    }


class SimulationService:
    """Stored scenarios, runs and batches of a tenant."""

    def __init__(
        self,
        db: Database,
        runner: ScenarioRunner,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._db = db
        self.runner = runner
        self._clock = clock

    # Scenarios

    async def create_scenario(self, tenant_id: str, document: dict[str, Any]) -> dict[str, Any]:
        """Check and store a scenario; returns its view."""
        now = self._clock()
        row = {"id": new_id("scn"), "tenant_id": tenant_id, "created_at": now}
        row |= _scenario_values(parse_scenario(document), document, now)
        async with self._db.write() as conn:
            await simulations.insert_scenario(conn, row)
        return scenario_view(row)

    async def get_scenario(self, tenant_id: str, scenario_id: str) -> dict[str, Any]:
        """A scenario of the tenant; NotFound otherwise."""
        async with self._db.read() as conn:
            row = await _stored_scenario(conn, tenant_id, scenario_id)
        return scenario_view(row)

    async def list_scenarios(
        self, tenant_id: str, *, active: bool | None, limit: int, offset: int
    ) -> dict[str, Any]:
        """A page of the tenant's scenarios (without their documents)."""
        _page(limit, offset)
        async with self._db.read() as conn:
            rows, total = await simulations.list_scenarios(
                conn, tenant_id, active=active, limit=limit, offset=offset
            )
        return _listing("scenarios", [scenario_view(r, document=False) for r in rows], total,
                        limit, offset)  # fmt: skip

    async def replace_scenario(
        self, tenant_id: str, scenario_id: str, document: dict[str, Any]
    ) -> dict[str, Any]:
        """Replace a scenario's document (checked again)."""
        values = _scenario_values(parse_scenario(document), document, self._clock())
        async with self._db.write() as conn:
            if not await simulations.update_scenario(conn, tenant_id, scenario_id, values):
                raise _no_scenario(scenario_id)
        return await self.get_scenario(tenant_id, scenario_id)

    async def deactivate_scenario(self, tenant_id: str, scenario_id: str) -> None:
        """Soft-delete: the scenario stays readable (runs point at it) but is marked inactive."""
        values = {"active": False, "updated_at": self._clock()}
        async with self._db.write() as conn:
            if not await simulations.update_scenario(conn, tenant_id, scenario_id, values):
                raise _no_scenario(scenario_id)

    # Runs

    async def run(
        self,
        tenant_id: str,
        *,
        scenario_id: str | None = None,
        document: dict[str, Any] | None = None,
        name: str | None = None,
        batch_id: str | None = None,
    ) -> dict[str, Any]:
        """Run a stored scenario or an inline one now, store the run and return it."""
        if (scenario_id is None) == (document is None):
            raise InvalidInput(
                "give either scenarioId or scenario", code="invalid_body", param="scenarioId"
            )
        if scenario_id is not None:
            async with self._db.read() as conn:
                stored = await _stored_scenario(conn, tenant_id, scenario_id)
            document = dict(stored["document"])
        assert document is not None
        scenario = parse_scenario(document)  # an inline scenario's errors are the caller's (400)
        run_id = new_id("simrun")
        started = time.perf_counter()
        created = self._clock()
        status, passed, result, error = "completed", None, None, None
        try:
            outcome = await self.runner.run(scenario, run_id=run_id)
            passed, result = outcome.passed, outcome.result
        except StripeMeterError as exc:
            status, error = "failed", {"code": exc.code, "message": exc.message}
        row = {
            "id": run_id,
            "tenant_id": tenant_id,
            "scenario_id": scenario_id,
            "batch_id": batch_id,
            "name": (name or scenario.name)[:255],
            "status": status,
            "passed": passed,
            "scenario_snapshot": jsonable(document),
            "result": result,
            "error": error,
            "duration_ms": int((time.perf_counter() - started) * 1000),
            "created_at": created,
            "completed_at": self._clock(),
        }
        async with self._db.write() as conn:
            await simulations.insert_run(conn, row)
        return run_view(row)

    async def get_run(self, tenant_id: str, run_id: str) -> dict[str, Any]:
        """A run of the tenant; NotFound otherwise."""
        async with self._db.read() as conn:
            row = await simulations.get_run(conn, tenant_id, run_id)
        if row is None:
            raise NotFound(f"no simulation run {run_id}", code="run_not_found")
        return run_view(row)

    async def list_runs(
        self, tenant_id: str, *, scenario_id: str | None, limit: int, offset: int
    ) -> dict[str, Any]:
        """A page of the tenant's runs (without snapshots and results)."""
        _page(limit, offset)
        async with self._db.read() as conn:
            rows, total = await simulations.list_runs(
                conn, tenant_id, scenario_id=scenario_id, limit=limit, offset=offset
            )
        return _listing("runs", [run_view(r, full=False) for r in rows], total, limit, offset)

    # Batches

    async def run_batch(
        self, tenant_id: str, *, name: str, description: str, scenario_ids: list[str]
    ) -> dict[str, Any]:
        """Run several stored scenarios; every id must be one of the tenant's scenarios."""
        if not scenario_ids or len(scenario_ids) > MAX_BATCH_SCENARIOS:
            raise InvalidInput(
                f"scenarioIds must list 1 to {MAX_BATCH_SCENARIOS} scenarios",
                code="invalid_body",
                param="scenarioIds",
            )
        async with self._db.read() as conn:
            for index, scenario_id in enumerate(scenario_ids):
                await _stored_scenario(conn, tenant_id, scenario_id, f"scenarioIds[{index}]")
        batch_id = new_id("simbatch")
        created = self._clock()
        runs = [
            await self.run(tenant_id, scenario_id=sid, batch_id=batch_id) for sid in scenario_ids
        ]
        passed = sum(1 for r in runs if r["passed"] is True)
        failed = sum(1 for r in runs if r["status"] == "failed" or r["passed"] is False)
        summary = {
            "totalRuns": len(runs),
            "passed": passed,
            "failed": failed,
            "errored": sum(1 for r in runs if r["status"] == "failed"),
        }
        status = "completed" if failed == 0 else ("failed" if passed == 0 else "partial")
        row = {
            "id": batch_id,
            "tenant_id": tenant_id,
            "name": name[:255],
            "description": description,
            "scenario_ids": scenario_ids,
            "status": status,
            "summary": summary,
            "created_at": created,
            "completed_at": self._clock(),
        }
        async with self._db.write() as conn:
            await simulations.insert_batch(conn, row)
        return await self.get_batch(tenant_id, batch_id)

    async def get_batch(self, tenant_id: str, batch_id: str) -> dict[str, Any]:
        """A batch of the tenant with its runs' outcomes."""
        async with self._db.read() as conn:
            row = await simulations.get_batch(conn, tenant_id, batch_id)
            if row is None:
                raise NotFound(f"no simulation batch {batch_id}", code="batch_not_found")
            runs, _ = await simulations.list_runs(conn, tenant_id, batch_id=batch_id)
        return {
            "id": row["id"],
            "name": row["name"],
            "description": row["description"],
            "scenarioIds": row["scenario_ids"],
            "status": row["status"],
            "summary": row["summary"],
            "createdAt": row["created_at"],
            "completedAt": row["completed_at"],
            "runs": [
                {
                    "id": r["id"],
                    "scenarioId": r["scenario_id"],
                    "status": r["status"],
                    "passed": r["passed"],
                    "error": r["error"],
                }
                for r in sorted(runs, key=lambda r: (r["created_at"], r["id"]))
            ],
        }


def scenario_view(row: Any, *, document: bool = True) -> dict[str, Any]:
    """A stored scenario as the API shows it."""
    view = {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "version": row["version"],
        "tags": row["tags"],
        "active": row["active"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
    }
    if document:
        view["scenario"] = row["document"]
    return view


def run_view(row: Any, *, full: bool = True) -> dict[str, Any]:
    """A stored run as the API shows it."""
    view = {
        "id": row["id"],
        "scenarioId": row["scenario_id"],
        "batchId": row["batch_id"],
        "name": row["name"],
        "status": row["status"],
        "passed": row["passed"],
        "error": row["error"],
        "durationMs": row["duration_ms"],
        "createdAt": row["created_at"],
        "completedAt": row["completed_at"],
    }
    if full:
        view["result"] = row["result"]
        view["scenario"] = row["scenario_snapshot"]
    return view


def _without(document: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != key}


def _scenario_values(scenario: Scenario, document: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The stored columns a scenario's document sets (creating or replacing it)."""
    return {
        "name": scenario.name,
        "description": scenario.description,
        "version": scenario.version,
        "tags": list(scenario.tags),
        "document": jsonable(_without(document, "active")),
        "active": bool(document.get("active", True)),
        "updated_at": now,
    }


def _no_scenario(scenario_id: str, param: str | None = None) -> NotFound:
    return NotFound(f"no scenario {scenario_id}", code="scenario_not_found", param=param)


async def _stored_scenario(
    conn: AsyncConnection, tenant_id: str, scenario_id: str, param: str | None = None
) -> RowMapping:
    """A scenario of the tenant; NotFound (naming ``param``) otherwise."""
    row = await simulations.get_scenario(conn, tenant_id, scenario_id)
    if row is None:
        raise _no_scenario(scenario_id, param)
    return row


def _listing(
    name: str, views: list[dict[str, Any]], total: int, limit: int, offset: int
) -> dict[str, Any]:
    """A page of views as the API lists them."""
    return {name: views, "total": total, "limit": limit, "offset": offset}


def _page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_PAGE}", code="invalid_parameter", param="limit"
        )
    if not 0 <= offset <= MAX_OFFSET:
        raise InvalidInput(f"offset must be between 0 and {MAX_OFFSET}", code="invalid_parameter",
                           param="offset")  # fmt: skip
