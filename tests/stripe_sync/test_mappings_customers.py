"""Mappings and customer mappings: CRUD, validation against Stripe, tenant isolation."""

from __future__ import annotations

import httpx

from tests.conftest import issue
from tests.stripe_sync.conftest import FakeStripe


async def test_mapping_crud_and_wire_names(api: httpx.AsyncClient, fake: FakeStripe) -> None:
    """A mapping is created against an existing meter, read, changed, listed and deleted."""
    meter = fake.meter("api_calls")
    created = await api.post(
        "/v1/mappings",
        json={
            "metric": "api_calls",
            "aggregation": "sum",
            "meterEventName": "api_calls",
            "currency": "USD",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["meterId"] == meter
    assert body["driver"] == "meters"
    assert body["currency"] == "usd"
    assert body["stripeAccount"] == "default"
    assert body["active"] is True
    assert body["shadow"] is False
    mapping_id = body["id"]
    assert (await api.get(f"/v1/mappings/{mapping_id}")).json()["metric"] == "api_calls"
    changed = await api.patch(f"/v1/mappings/{mapping_id}", json={"active": False})
    assert changed.status_code == 200
    assert changed.json()["active"] is False
    listed = await api.get("/v1/mappings", params={"active": "false"})
    assert [m["id"] for m in listed.json()["data"]] == [mapping_id]
    assert (await api.delete(f"/v1/mappings/{mapping_id}")).status_code == 204
    assert (await api.get(f"/v1/mappings/{mapping_id}")).status_code == 404


async def test_mapping_validation_errors(api: httpx.AsyncClient, fake: FakeStripe) -> None:
    """Unknown meters, formulas that do not fit and malformed fields are refused precisely."""
    fake.meter("seats_sum", "sum")
    fake.meter("seats_last", "last")
    cases = [
        ({"metric": "x", "aggregation": "sum", "meterEventName": "nope"}, "meter_not_found"),
        (
            {"metric": "x", "aggregation": "max", "meterEventName": "seats_sum"},
            "meter_formula_mismatch",
        ),
        (
            {"metric": "x", "aggregation": "sum", "meterEventName": "seats_last"},
            "meter_formula_mismatch",
        ),
        ({"metric": "x", "aggregation": "median", "meterEventName": "seats_sum"}, "invalid_value"),
        ({"metric": "x", "aggregation": "sum"}, "missing_target"),
        ({"aggregation": "sum", "meterEventName": "seats_sum"}, "missing_field"),
        (
            {"metric": "x", "aggregation": "sum", "meterEventName": "seats_sum", "bogus": 1},
            "unknown_field",
        ),
        (
            {
                "metric": "x",
                "aggregation": "sum",
                "meterEventName": "seats_sum",
                "stripeAccount": "evil",
            },
            "invalid_value",
        ),
        ({"metric": "x", "aggregation": "sum", "meterId": "mtr_missing"}, "stripe_not_found"),
    ]
    for body, code in cases:
        response = await api.post("/v1/mappings", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["code"] == code, (body, response.text)
    ok = await api.post(
        "/v1/mappings",
        json={"metric": "seats", "aggregation": "max", "meterEventName": "seats_last"},
    )
    assert ok.status_code == 201, ok.text  # max is published to a last meter


async def test_mappings_and_customers_are_tenant_scoped(
    api: httpx.AsyncClient, client: httpx.AsyncClient, app_services: object, fake: FakeStripe
) -> None:
    """Another tenant's mapping or customer is 404 by id, absent from lists, and not deletable."""
    fake.meter("api_calls")
    mapping = (
        await api.post(
            "/v1/mappings",
            json={"metric": "api_calls", "aggregation": "sum", "meterEventName": "api_calls"},
        )
    ).json()
    await api.post("/v1/customers", json={"customerRef": "c1", "stripeCustomerId": "cus_A1"})
    other = await issue(app_services, "globex")  # type: ignore[arg-type]
    headers = {"Authorization": f"Bearer {other.key}"}
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://stripemeter.test", headers=headers
    ) as globex:
        assert (await globex.get(f"/v1/mappings/{mapping['id']}")).status_code == 404
        assert (
            await globex.patch(f"/v1/mappings/{mapping['id']}", json={"active": False})
        ).status_code == 404
        assert (await globex.delete(f"/v1/mappings/{mapping['id']}")).status_code == 404
        assert (await globex.get("/v1/mappings")).json()["data"] == []
        assert (await globex.get("/v1/customers/c1")).status_code == 404
        assert (await globex.get("/v1/customers")).json()["data"] == []
        assert (await globex.get("/v1/pushes")).json()["data"] == []
        forged = await globex.get("/v1/mappings", params={"tenantId": "acme"})
        assert forged.status_code == 403
    assert (await api.get(f"/v1/mappings/{mapping['id']}")).status_code == 200


async def test_customer_crud_bulk_import_and_validation(api: httpx.AsyncClient) -> None:
    """Customers are created, replaced, imported in bulk (all or nothing), paged and deleted."""
    one = await api.post("/v1/customers", json={"customerRef": "c1", "stripeCustomerId": "cus_1"})
    assert one.status_code == 201
    assert one.json()["stripeCustomerId"] == "cus_1"
    replaced = await api.put("/v1/customers/c1", json={"stripeCustomerId": "cus_9"})
    assert replaced.json()["stripeCustomerId"] == "cus_9"
    bad = await api.post(
        "/v1/customers/import",
        json={
            "customers": [
                {"customerRef": "a", "stripeCustomerId": "cus_a"},
                {"customerRef": "b", "stripeCustomerId": "oops"},
            ]
        },
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "customers[1].stripeCustomerId"
    assert (await api.get("/v1/customers/a")).status_code == 404  # nothing of the bad batch stored
    imported = await api.post(
        "/v1/customers/import",
        json={
            "customers": [
                {"customerRef": f"k{i:02}", "stripeCustomerId": f"cus_{i}"} for i in range(5)
            ]
        },
    )
    assert imported.json()["imported"] == 5
    page = (await api.get("/v1/customers", params={"limit": 4})).json()
    assert [c["customerRef"] for c in page["data"]] == ["c1", "k00", "k01", "k02"]
    rest = (await api.get("/v1/customers", params={"cursor": page["nextCursor"]})).json()
    assert [c["customerRef"] for c in rest["data"]] == ["k03", "k04"]
    assert (await api.delete("/v1/customers/k00")).status_code == 204
    assert (await api.delete("/v1/customers/k00")).status_code == 404


async def test_customer_lookup_through_stripe_metadata(
    api: httpx.AsyncClient, fake: FakeStripe
) -> None:
    """A customerRef is resolved by the Stripe customer whose metadata carries it."""
    stripe_id = fake.customer(customerRef="acct-42")
    fake.customer(customerRef="other")
    found = await api.post("/v1/customers/lookup", json={"customerRef": "acct-42"})
    assert found.status_code == 200, found.text
    assert found.json()["stripeCustomerId"] == stripe_id
    assert (await api.get("/v1/customers/acct-42")).json()["stripeCustomerId"] == stripe_id
    missing = await api.post("/v1/customers/lookup", json={"customerRef": "nobody"})
    assert missing.status_code == 404
