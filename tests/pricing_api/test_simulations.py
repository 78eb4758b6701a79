"""Simulations: scenario CRUD, runs through the real ingest path, batches, what-ifs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from stripemeter.api.app import Services
from stripemeter.services.scenarios import load_document
from stripemeter.store.tables import counters, events

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"


def example(name: str) -> dict[str, Any]:
    """An example scenario as a JSON-ready document (numbers as strings where they were decimals)."""
    document = load_document((EXAMPLES / f"{name}.sim.yaml").read_text())
    plain: dict[str, Any] = _plain(document)
    return plain


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if type(value).__name__ == "Decimal":
        return str(value)
    return value


async def create(api: httpx.AsyncClient, document: dict[str, Any]) -> dict[str, Any]:
    """Store a scenario."""
    response = await api.post("/v1/simulations/scenarios", json=document)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


class TestScenarios:
    async def test_crud(self, api: httpx.AsyncClient) -> None:
        """A scenario is created, read, listed, replaced and soft-deleted."""
        created = await create(api, example("per-unit"))
        assert created["name"] == "per-unit"
        assert created["active"] is True
        got = await api.get(f"/v1/simulations/scenarios/{created['id']}")
        assert got.status_code == 200
        assert got.json()["scenario"]["prices"]["api_calls"]["unit_amount"] == 2
        listed = (await api.get("/v1/simulations/scenarios")).json()
        assert [s["id"] for s in listed["scenarios"]] == [created["id"]]
        assert listed["total"] == 1
        changed = example("per-unit") | {"name": "per-unit v2", "version": "2"}
        put = await api.put(f"/v1/simulations/scenarios/{created['id']}", json=changed)
        assert put.status_code == 200, put.text
        assert (put.json()["name"], put.json()["version"]) == ("per-unit v2", "2")
        deleted = await api.delete(f"/v1/simulations/scenarios/{created['id']}")
        assert deleted.status_code == 204
        after = (await api.get(f"/v1/simulations/scenarios/{created['id']}")).json()
        assert after["active"] is False
        active = (await api.get("/v1/simulations/scenarios", params={"active": "true"})).json()
        assert active["scenarios"] == []

    async def test_yaml_bodies_are_accepted(self, api: httpx.AsyncClient) -> None:
        """A scenario may be posted as YAML with Content-Type application/yaml."""
        text = (EXAMPLES / "tax.sim.yaml").read_text()
        response = await api.post(
            "/v1/simulations/scenarios", content=text,
            headers={"Content-Type": "application/yaml"},
        )  # fmt: skip
        assert response.status_code == 201, response.text
        assert response.json()["name"] == "tax"

    async def test_invalid_scenarios_name_the_field(self, api: httpx.AsyncClient) -> None:
        """A scenario breaking a rule is refused with the offending field."""
        document = example("per-unit")
        document["prices"]["api_calls"] = {"billing_scheme": "tiered", "tiers_mode": "graduated",
                                           "tiers": [{"up_to": 5, "unit_amount": 1}]}  # fmt: skip
        response = await api.post("/v1/simulations/scenarios", json=document)
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "prices.api_calls.tiers[0].up_to"
        missing = await api.put("/v1/simulations/scenarios/scn_nope", json=example("per-unit"))
        assert missing.status_code == 404


class TestRuns:
    async def test_inline_run_goes_through_ingest(
        self, api: httpx.AsyncClient, app_services: Services
    ) -> None:
        """Duplicates, a conflict and a late event are judged by real ingest; scratch rows are gone."""
        response = await api.post(
            "/v1/simulations/runs", json={"scenario": example("late-and-duplicate-events")}
        )
        assert response.status_code == 201, response.text
        run = response.json()
        assert (run["status"], run["passed"]) == ("completed", True)
        totals = run["result"]["ingest"]["totals"]
        assert totals == {"accepted": 4, "duplicate": 2, "conflict": 1, "held": 1, "rejected": 0}
        held = [e for e in run["result"]["ingest"]["notAccepted"] if e["status"] == "held"]
        assert held[0]["reason"] == "beyond_lateness_window"
        assert run["result"]["invoices"][0]["invoice"]["total"] == "1.6"
        async with app_services.db.read() as conn:
            left = (await conn.execute(
                select(func.count()).select_from(events).where(events.c.tenant_id.like("sim-%"))
            )).scalar_one()  # fmt: skip
            left += (await conn.execute(
                select(func.count()).select_from(counters).where(counters.c.tenant_id.like("sim-%"))
            )).scalar_one()  # fmt: skip
        assert left == 0
        again = await api.get(f"/v1/simulations/runs/{run['id']}")
        assert again.json() == run

    async def test_stored_run_reports_differences(self, api: httpx.AsyncClient) -> None:
        """A wrong expectation makes the run fail with the differing field."""
        document = example("tax")
        document["expected"]["invoices"]["cus_us"]["total"] = "32.47"
        scenario = await create(api, document)
        response = await api.post("/v1/simulations/runs", json={"scenarioId": scenario["id"]})
        assert response.status_code == 201, response.text
        run = response.json()
        assert run["passed"] is False
        us = next(i for i in run["result"]["invoices"] if i["customerRef"] == "cus_us")
        assert [d["field"] for d in us["differences"]] == ["total"]
        listed = (
            await api.get("/v1/simulations/runs", params={"scenarioId": scenario["id"]})
        ).json()
        assert [r["id"] for r in listed["runs"]] == [run["id"]]

    async def test_what_if_shows_the_difference_per_customer(self, api: httpx.AsyncClient) -> None:
        """The same usage under two prices: each customer's current and new totals."""
        run = (await api.post("/v1/simulations/runs",
                              json={"scenario": example("pricing-change-what-if")})).json()  # fmt: skip
        diffs = {w["customerRef"]: (w["currentTotal"], w["newTotal"], w["difference"])
                 for w in run["result"]["whatIf"]}  # fmt: skip
        assert diffs == {"cus_large": ("220", "185", "-35"), "cus_small": ("50", "60", "10")}

    async def test_run_needs_one_source(self, api: httpx.AsyncClient) -> None:
        """Neither or both of scenarioId and scenario is a 400; an unknown id a 404."""
        assert (await api.post("/v1/simulations/runs", json={})).status_code == 400
        unknown = await api.post("/v1/simulations/runs", json={"scenarioId": "scn_nope"})
        assert unknown.status_code == 404


async def test_batches_run_every_scenario(api: httpx.AsyncClient) -> None:
    """A batch runs each stored scenario and summarises passes and failures."""
    good = await create(api, example("volume"))
    failing = example("graduated")
    failing["expected"]["invoices"]["cus_6"]["total"] = "30"
    bad = await create(api, failing)
    response = await api.post(
        "/v1/simulations/batches",
        json={"name": "nightly", "scenarioIds": [good["id"], bad["id"]]},
    )
    assert response.status_code == 201, response.text
    batch = response.json()
    assert batch["status"] == "partial"
    assert batch["summary"] == {"totalRuns": 2, "passed": 1, "failed": 1, "errored": 0}
    assert {r["scenarioId"]: r["passed"] for r in batch["runs"]} == {
        good["id"]: True,
        bad["id"]: False,
    }
    assert (await api.get(f"/v1/simulations/batches/{batch['id']}")).json() == batch
    unknown = await api.post(
        "/v1/simulations/batches", json={"name": "x", "scenarioIds": ["scn_x"]}
    )
    assert unknown.status_code == 404


async def test_scenario_documents_survive_storage(api: httpx.AsyncClient) -> None:
    """Every example scenario stored and run through the API passes as it does from a file."""
    for name in ("sub-cent", "zero-decimal-jpy", "credits"):
        scenario = await create(api, copy.deepcopy(example(name)))
        run = (await api.post("/v1/simulations/runs", json={"scenarioId": scenario["id"]})).json()
        assert run["passed"] is True, (name, run["result"])
