"""Replay: counters recomputed from the ledger and approved adjustments; differences reported, repaired."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import update
from typer.testing import CliRunner

from stripemeter.api.app import Services
from stripemeter.cli.main import app as cli
from stripemeter.config import Settings
from stripemeter.services.replay import ReplayProgress, ReplayScope, ReplayService
from stripemeter.store import counters as counter_store
from stripemeter.store.counters import CounterKey
from stripemeter.store.tables import counters
from tests.conftest import issue
from tests.integration._counters import FEB, JAN, bearer, event, hold_one, ingest, stored


async def corrupt(
    services: Services, customer: str = "cus_1", period_start: datetime = JAN, **values: Any
) -> None:
    """Overwrite a stored counter behind the service's back."""
    async with services.db.write() as conn:
        await conn.execute(
            update(counters)
            .where(
                counters.c.tenant_id == "acme",
                counters.c.metric == "api_calls",
                counters.c.customer_ref == customer,
                counters.c.period_start == period_start,
            )
            .values(**values)
        )


async def seed(api: httpx.AsyncClient) -> None:
    """Two customers over two months, out of order, with a tie on the latest time."""
    await ingest(
        api,
        event("2025-01-05T00:00:00Z", 3),
        event("2025-01-20T00:00:00Z", 7, idempotencyKey="b"),
        event("2025-01-20T00:00:00Z", 2, idempotencyKey="a"),
        event("2025-01-19T12:00:00Z", 4),
        event("2025-02-02T00:00:00Z", 1),
        event("2025-01-07T00:00:00Z", 5, customerRef="cus_2"),
    )


async def replay(api: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await api.post("/v1/replay", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_dry_run_reports_a_corrupted_counter_and_apply_repairs_it(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """A dry run reports the corrupted counter untouched; apply repairs it; a second apply finds nothing."""
    await seed(api)
    good = await stored(app_services)
    assert good is not None
    assert (good.sum, good.max, good.last, good.count) == (Decimal(16), Decimal(7), Decimal(7), 4)
    await corrupt(app_services, sum=Decimal("999.5"), count=9)

    dry = await replay(api, mode="dry-run")
    assert (dry["countersChecked"], dry["countersDifferent"], dry["countersRepaired"]) == (3, 1, 0)
    [difference] = dry["differences"]
    assert difference["customerRef"] == "cus_1"
    assert difference["periodStart"] == "2025-01-01T00:00:00Z"
    assert difference["kind"] == "changed"
    assert difference["stored"]["sum"] == Decimal("999.5")
    assert (difference["stored"]["count"], difference["recomputed"]["count"]) == (9, 4)
    assert difference["recomputed"]["sum"] == 16
    assert dry["changes"]["api_calls"]["counterDelta"] == Decimal("-983.5")
    still = await stored(app_services)
    assert still is not None
    assert (still.sum, still.count) == (Decimal("999.5"), 9)

    applied = await replay(api, mode="apply")
    assert (applied["countersDifferent"], applied["countersRepaired"]) == (1, 1)
    assert await stored(app_services) == good

    again = await replay(api, mode="apply")
    assert (again["countersChecked"], again["countersDifferent"], again["countersRepaired"]) == (
        3,
        0,
        0,
    )
    entries = (await api.get("/v1/audit")).json()["entries"]
    assert [e["action"] for e in entries].count("replay.repaired") == 1


async def test_replay_after_approvals_equals_the_counters(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Approved held events fold like events in replay, so nothing differs after approvals."""
    await seed(api)
    first = await hold_one(api, quantity=2.5)
    second = await hold_one(api, quantity=50, customer="cus_2")
    assert (await api.post(f"/v1/events/held/{first}/approve")).status_code == 200
    assert (await api.post(f"/v1/events/held/{second}/dismiss")).status_code == 200
    result = await replay(api)
    assert result["countersDifferent"] == 0, result["differences"]
    assert result["adjustmentsScanned"] == 1
    # And a counter rebuilt from nothing equals the one ingest and approval built.
    before = await stored(app_services)
    async with app_services.db.write() as conn:
        await counter_store.delete(conn, [CounterKey("acme", "api_calls", "cus_1", JAN)])
    missing = await replay(api, mode="apply")
    assert [d["kind"] for d in missing["differences"]] == ["missing"]
    assert await stored(app_services) == before


async def test_a_counter_with_nothing_behind_it_is_reported_and_removed(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """A stored counter without events or adjustments is orphaned: reported, then deleted on apply."""
    await seed(api)
    async with app_services.db.write() as conn:
        await conn.execute(
            counters.insert().values(
                tenant_id="acme", metric="api_calls", customer_ref="ghost", period_start=JAN,
                period_end=FEB, sum=Decimal(42), count=1, updated_at=datetime.now(UTC),
                updated_minute=datetime.now(UTC),
            )
        )  # fmt: skip
    dry = await replay(api, customerRef="ghost")
    assert [(d["customerRef"], d["kind"]) for d in dry["differences"]] == [("ghost", "orphaned")]
    assert dry["differences"][0]["recomputed"] is None
    await replay(api, customerRef="ghost", mode="apply")
    assert await stored(app_services, customer="ghost") is None


async def test_the_scope_limits_what_is_checked_and_periods_are_whole(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Filters narrow the counters checked; a period overlapping since/until is recomputed whole."""
    await seed(api)
    await corrupt(app_services, sum=Decimal(1))
    await corrupt(app_services, customer="cus_2", sum=Decimal(1))
    only_cus_2 = await replay(api, customerRef="cus_2")
    assert [d["customerRef"] for d in only_cus_2["differences"]] == ["cus_2"]
    february = await replay(api, since="2025-02-01T00:00:00Z")
    assert (february["countersChecked"], february["countersDifferent"]) == (1, 0)
    other_metric = await replay(api, metrics=["storage_gb"])
    assert other_metric["countersChecked"] == 0
    # since falls late in January, yet all of January (events from Jan 5) is recomputed.
    late_january = await replay(
        api, customerRef="cus_1", since="2025-01-25T00:00:00Z", until="2025-01-26T00:00:00Z",
        mode="apply",
    )  # fmt: skip
    assert late_january["countersRepaired"] == 1
    repaired = await stored(app_services)
    assert repaired is not None
    assert repaired.sum == Decimal(16)
    bad = await api.post(
        "/v1/replay", json={"since": "2025-02-01T00:00:00Z", "until": "2025-01-01T00:00:00Z"}
    )
    assert bad.status_code == 400
    assert (await api.post("/v1/replay", json={"since": "yesterday"})).json()["error"][
        "param"
    ] == "since"


async def test_the_original_request_form_is_accepted(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """{"tenantId", "dryRun"} works as in the original product; a foreign tenantId is 403."""
    await seed(api)
    await corrupt(app_services, sum=Decimal(1))
    dry = await replay(api, tenantId="acme", dryRun=True)
    assert (dry["mode"], dry["countersDifferent"], dry["countersRepaired"]) == ("dry-run", 1, 0)
    relative = await replay(api, tenantId="acme", since="-P3650D", until="now")
    assert relative["countersDifferent"] == 1
    applied = await replay(api, tenantId="acme", dryRun=False)
    assert (applied["mode"], applied["countersRepaired"]) == ("apply", 1)
    foreign = await api.post("/v1/replay", json={"tenantId": "globex", "dryRun": True})
    assert foreign.status_code == 403
    assert foreign.json()["error"]["code"] == "tenant_mismatch"
    clash = await api.post("/v1/replay", json={"mode": "apply", "dryRun": True})
    assert clash.status_code == 400
    assert clash.json()["error"]["code"] == "conflicting_mode"


async def test_replay_is_tenant_scoped_and_admin_only(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Another tenant's replay neither sees nor repairs acme's counters; non-admin keys get 403."""
    await seed(api)
    await corrupt(app_services, sum=Decimal(1))
    other = bearer((await issue(app_services, "globex")).key)
    response = await api.post("/v1/replay", json={"mode": "apply"}, headers=other)
    assert response.status_code == 200
    assert (response.json()["countersChecked"], response.json()["differences"]) == (0, [])
    corrupted = await stored(app_services)
    assert corrupted is not None
    assert corrupted.sum == Decimal(1)
    approver = bearer((await issue(app_services, "acme", "adjustments:approve,usage:read")).key)
    denied = await api.post("/v1/replay", json={}, headers=approver)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "missing_scope"


async def test_apply_in_small_chunks_reports_progress(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """The service repairs chunk by chunk and reports progress up to the number of counters."""
    await seed(api)
    await corrupt(app_services, sum=Decimal(1))
    await corrupt(app_services, customer="cus_2", sum=Decimal(1))
    steps: list[ReplayProgress] = []
    report = await ReplayService(app_services.db, chunk_size=1).run(
        "acme", ReplayScope(), apply=True, actor="test", progress=steps.append
    )
    assert report.counters_repaired == 2
    assert [(s.done, s.total) for s in steps] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert steps[-1].different == 2


def test_the_cli_reports_and_repairs(database_url: str) -> None:
    """`stripemeter replay` dry-runs by default and repairs with --apply (JSON output)."""
    settings = Settings(database_url=database_url, log_format="console", log_level="WARNING")

    async def prepare() -> None:
        services = Services.build(settings)
        try:
            report = await services.ingest.ingest("acme", [event("2025-01-20T00:00:00Z", 4)])
            assert report.totals["accepted"] == 1
            await corrupt(services, sum=Decimal(40))
        finally:
            await services.ingest.stop()
            await services.db.dispose()

    asyncio.run(prepare())
    runner = CliRunner()
    base = ["replay", "--tenant", "acme", "--database-url", database_url, "--json"]
    dry = runner.invoke(cli, [*base, "--check"])
    assert dry.exit_code == 1, dry.output
    assert json.loads(dry.stdout)["countersDifferent"] == 1
    applied = runner.invoke(cli, [*base, "--apply", "--metric", "api_calls"])
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout)["countersRepaired"] == 1
    clean = runner.invoke(cli, [*base, "--check"])
    assert clean.exit_code == 0, clean.output


async def test_apply_racing_with_ingest_loses_no_event(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Replay apply running during ingest never overwrites a concurrent count: afterwards nothing differs."""
    await seed(api)
    await corrupt(app_services, sum=Decimal(1))

    async def send(batch: int) -> None:
        for n in range(5):
            await ingest(api, event(f"2025-01-21T{batch:02d}:{n:02d}:00Z", 1))

    async def repair() -> None:
        for _ in range(3):
            await replay(api, mode="apply")

    await asyncio.gather(send(1), send(2), repair(), send(3))
    state = await stored(app_services)
    assert state is not None
    assert (state.sum, state.count) == (Decimal(16 + 15), 4 + 15)
    assert (await replay(api))["countersDifferent"] == 0


async def test_out_of_range_scopes_are_400_not_server_errors(api: httpx.AsyncClient) -> None:
    """Times outside 1970-9999, absurd durations and control characters are precise 400s."""
    bodies = [
        {"until": "0001-01-01T00:00:00Z"},
        {"since": "9999-12-31T23:59:59Z"},
        {"since": "-P999999999D"},
        {"customerRef": "cus\u0000"},
        {"metrics": ["api\u0007calls"]},
        {"metrics": "api_calls"},
        {"mode": "fix"},
        {"cursor": "abc"},
    ]
    for body in bodies:
        response = await api.post("/v1/replay", json=body)
        assert response.status_code == 400, (body, response.text)
