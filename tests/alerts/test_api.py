"""The alerts API: validation, CRUD, acknowledge/snooze, scopes on every route, tenant isolation."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from stripemeter.api.app import Services
from tests.alerts.conftest import (
    create_rule,
    evaluate,
    history,
    ingest,
    now_text,
    settle,
    states,
)
from tests.conftest import issue

RULE = {"name": "big", "type": "usage_threshold", "metric": "api_calls", "thresholds": [10]}
LIMIT = {"customerRef": "cus_1", "metric": "api_calls", "limit": 100}
# (method, path, body, scope that suffices)
ROUTES: list[tuple[str, str, Any, str]] = [
    ("GET", "/v1/alerts", None, "usage:read"),
    ("POST", "/v1/alerts", RULE, "mappings:write"),
    ("GET", "/v1/alerts/{rule}", None, "usage:read"),
    ("PATCH", "/v1/alerts/{rule}", {"name": "renamed"}, "mappings:write"),
    ("PUT", "/v1/alerts/{rule}", {"name": "renamed"}, "mappings:write"),
    ("GET", "/v1/alerts/states", None, "usage:read"),
    ("GET", "/v1/alerts/states/{state}", None, "usage:read"),
    ("POST", "/v1/alerts/states/{state}/acknowledge", {}, "mappings:write"),
    ("POST", "/v1/alerts/states/{state}/snooze", {"seconds": 60}, "mappings:write"),
    ("GET", "/v1/alerts/events", None, "usage:read"),
    ("GET", "/v1/alerts/deliveries", None, "usage:read"),
    ("POST", "/v1/alerts/deliveries/{delivery}/retry", None, "mappings:write"),
    ("POST", "/v1/alerts/evaluate", None, "mappings:write"),
    ("GET", "/v1/limits", None, "usage:read"),
    ("PUT", "/v1/limits", LIMIT, "mappings:write"),
    ("DELETE", "/v1/limits?customerRef=cus_1&metric=api_calls", None, "mappings:write"),
    ("GET", "/v1/entitlements?customerRef=cus_1&metric=api_calls", None, "usage:read"),
    ("DELETE", "/v1/alerts/{rule}", None, "mappings:write"),
]


async def acme_objects(api: httpx.AsyncClient) -> dict[str, str]:
    """A fired rule of acme with a state and a delivery."""
    rule = await create_rule(api, **RULE)
    await ingest(api, "api_calls", "cus_1", 50)
    await evaluate(api)
    [state] = await states(api)
    delivery = (await api.get("/v1/alerts/deliveries")).json()["data"][0]
    return {"rule": rule["id"], "state": str(state["id"]), "delivery": str(delivery["id"])}


async def call(client: httpx.AsyncClient, key: str, method: str, path: str, body: Any,
               ids: dict[str, str]) -> httpx.Response:  # fmt: skip
    """One request with ``key``."""
    return await client.request(
        method, path.format(**ids), json=body, headers={"Authorization": f"Bearer {key}"}
    )


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_every_route_demands_its_scope(
    api: httpx.AsyncClient, client: httpx.AsyncClient, app_services: Services
) -> None:
    """Without the route's scope: 403 missing_scope; without a key: 401."""
    ids = await acme_objects(api)
    writer = await issue(app_services, "acme", "events:write")
    reader = await issue(app_services, "acme", "usage:read")
    for method, path, body, scope in ROUTES:
        if "entitlements" not in path:
            denied = await call(client, writer.key, method, path, body, ids)
            assert denied.status_code == 403, (method, path, denied.text)
            assert denied.json()["error"]["code"] == "missing_scope"
        if scope == "mappings:write":
            refused = await call(client, reader.key, method, path, body, ids)
            assert refused.status_code == 403, (method, path)
        anonymous = await client.request(
            method, path.format(**ids), json=body, headers={"Authorization": ""}
        )
        assert anonymous.status_code == 401, (method, path)


async def test_entitlements_accept_an_ingest_key(
    api: httpx.AsyncClient, client: httpx.AsyncClient, app_services: Services
) -> None:
    """The app that ingests (events:write) may check entitlements; a key with neither scope not."""
    writer = await issue(app_services, "acme", "events:write")
    approver = await issue(app_services, "acme", "adjustments:approve")
    path = "/v1/entitlements?customerRef=cus_1&metric=api_calls"
    ok = await client.get(path, headers={"Authorization": f"Bearer {writer.key}"})
    assert ok.status_code == 200
    refused = await client.get(path, headers={"Authorization": f"Bearer {approver.key}"})
    assert refused.status_code == 403


async def test_another_tenant_sees_and_touches_nothing(
    api: httpx.AsyncClient, client: httpx.AsyncClient, app_services: Services
) -> None:
    """Every by-id route answers 404 to another tenant, and every list is empty for it."""
    ids = await acme_objects(api)
    assert (await api.put("/v1/limits", json=LIMIT)).status_code == 200
    other = (await issue(app_services, "globex")).key
    for method, path, body, _ in ROUTES:
        if "{" not in path:
            continue
        response = await call(client, other, method, path, body, ids)
        assert response.status_code == 404, (method, path, response.text)
    for path in ("/v1/alerts", "/v1/alerts/states", "/v1/alerts/events", "/v1/alerts/deliveries",
                 "/v1/limits"):  # fmt: skip
        listed = await client.get(path, headers={"Authorization": f"Bearer {other}"})
        assert listed.json()["data"] == [], path
    evaluated = await call(client, other, "POST", "/v1/alerts/evaluate", None, ids)
    assert evaluated.json()["transitions"] == []
    gone = await call(client, other, "DELETE", "/v1/limits?customerRef=cus_1&metric=api_calls",
                      None, ids)  # fmt: skip
    assert gone.status_code == 404
    assert len(await states(api)) == 1
    assert (await api.get(f"/v1/alerts/{ids['rule']}")).json()["name"] == "big"


async def test_rule_crud_and_validation(api: httpx.AsyncClient) -> None:
    """Create sorts thresholds and fills defaults; PATCH applies false and 0; errors name the field."""
    created = await create_rule(api, name="r", type="usage_threshold", thresholds=[100, 80, 90])
    assert created["thresholds"] == [80, 90, 100]
    assert (created["enabled"], created["hysteresisPercent"], created["renotifyAfter"]) == (
        True,
        5,
        None,
    )
    patched = await api.patch(
        f"/v1/alerts/{created['id']}", json={"enabled": False, "hysteresisPercent": 0}
    )
    assert patched.status_code == 200
    assert (patched.json()["enabled"], patched.json()["hysteresisPercent"]) == (False, 0)
    assert patched.json()["thresholds"] == [80, 90, 100]
    bad: list[tuple[dict[str, Any], str]] = [
        ({"name": "x", "type": "nope", "thresholds": [1]}, "type"),
        ({"name": "x", "type": "spike", "thresholds": [1]}, "metric"),
        ({"name": "x", "type": "usage_threshold", "thresholds": []}, "thresholds"),
        ({"name": "x", "type": "usage_threshold", "thresholds": [0]}, "thresholds[0]"),
        ({"name": "x", "type": "held_events", "thresholds": [1], "percentOfLimit": True}, "percentOfLimit"),
        ({"name": "x", "type": "held_events", "thresholds": [1], "hardCap": True}, "hardCap"),
        ({"name": "x", "type": "usage_threshold", "thresholds": [1], "renotifyAfter": -1}, "renotifyAfter"),
        ({"name": "x", "type": "usage_threshold", "thresholds": [1],
          "channels": [{"type": "email", "to": "not-an-address"}]}, "channels[0].to"),
        ({"name": "x", "type": "usage_threshold", "thresholds": [1],
          "channels": [{"type": "webhook", "url": "ftp://x"}]}, "channels[0].url"),
        ({"name": "x", "type": "usage_threshold", "thresholds": [1], "colour": "red"}, "colour"),
    ]  # fmt: skip
    for body, param in bad:
        response = await api.post("/v1/alerts", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"]["param"] == param, body
    assert (await api.delete(f"/v1/alerts/{created['id']}")).status_code == 204
    assert (await api.get(f"/v1/alerts/{created['id']}")).status_code == 404


async def test_a_webhook_without_secret_gets_one_shown_once(api: httpx.AsyncClient) -> None:
    """The generated secret is in the creation response only; later reads say hasSecret."""
    rule = await create_rule(
        api, type="held_events", thresholds=[1],
        channels=[{"type": "webhook", "url": "https://hooks.example.com/x"}],
    )  # fmt: skip
    assert rule["channels"][0]["secret"].startswith("whsec_")
    read = (await api.get(f"/v1/alerts/{rule['id']}")).json()
    assert read["channels"][0] == {"type": "webhook", "url": "https://hooks.example.com/x",
                                   "hasSecret": True}  # fmt: skip
    renamed = await api.patch(f"/v1/alerts/{rule['id']}", json={"name": "n"})
    assert "secret" not in renamed.json()["channels"][0]


async def test_acknowledge_and_snooze_are_recorded_in_the_history(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """Acknowledge moves triggered → acknowledged; snooze and unsnooze are kept with actor and note."""
    await create_rule(api, type="usage_threshold", metric="api_calls", thresholds=[10],
                      renotifyAfter=60)  # fmt: skip
    await ingest(api, "api_calls", "cus_1", 50)
    assert await settle(api) == ["triggered"]
    [state] = await states(api, status="triggered")
    acked = await api.post(f"/v1/alerts/states/{state['id']}/acknowledge", json={"note": "on it"})
    assert acked.status_code == 200
    assert acked.json()["status"] == "acknowledged"
    assert acked.json()["acknowledgedBy"].startswith("key:")
    assert (await api.post(f"/v1/alerts/states/{state['id']}/acknowledge")).status_code == 200
    until = now_text(datetime.now(UTC) + timedelta(hours=1))
    snoozed = await api.post(f"/v1/alerts/states/{state['id']}/snooze", json={"until": until})
    assert snoozed.json()["snoozedUntil"] == until
    past = await api.post(
        f"/v1/alerts/states/{state['id']}/snooze", json={"until": "2020-01-01T00:00:00Z"}
    )
    assert past.status_code == 400
    lifted = await api.post(f"/v1/alerts/states/{state['id']}/snooze", json={"until": None})
    assert lifted.json()["snoozedUntil"] is None
    assert await history(api) == ["triggered", "acknowledged", "snoozed", "unsnoozed"]
    events = (await api.get("/v1/alerts/events", params={"stateId": state["id"]})).json()["data"]
    assert (await api.get("/v1/alerts/history")).json()["data"] == events
    acked_event = next(e for e in events if e["transition"] == "acknowledged")
    assert acked_event["note"] == "on it"
    assert acked_event["actor"].startswith("key:")
    # Acknowledged: re-notify delay passes, nothing is sent again.
    later = datetime.now(UTC) + timedelta(minutes=5)
    app_services.alerts.evaluator.clock = lambda: later
    assert await settle(api) == ["acknowledged", "snoozed", "unsnoozed"]
    assert len((await api.get("/v1/alerts/deliveries")).json()["data"]) == 1


async def test_renotify_delay_sends_again_while_unacknowledged(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """A triggered alert is re-sent once the delay has passed, not on every evaluation."""
    await create_rule(api, type="usage_threshold", metric="api_calls", thresholds=[10],
                      renotifyAfter=600)  # fmt: skip
    await ingest(api, "api_calls", "cus_1", 50)
    assert await settle(api) == ["triggered"]
    start = datetime.now(UTC)
    evaluator = app_services.alerts.evaluator
    for minutes, expected in ((5, []), (11, ["renotified"]), (15, []), (22, ["renotified"])):
        at = start + timedelta(minutes=minutes)
        evaluator.clock = functools.partial(lambda moment: moment, at)
        assert await settle(api) == expected, minutes
    assert len((await api.get("/v1/alerts/deliveries")).json()["data"]) == 3


async def test_snoozed_alert_fires_silently_and_reminds_once_after(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """A crossing during a snooze is recorded without a delivery; one reminder follows the snooze."""
    await create_rule(api, type="usage_threshold", metric="api_calls", thresholds=[10, 20])
    await ingest(api, "api_calls", "cus_1", 15)
    assert await settle(api) == ["triggered"]
    [state] = await states(api)
    await api.post(f"/v1/alerts/states/{state['id']}/snooze", json={"seconds": 3600})
    await ingest(api, "api_calls", "cus_1", 10)
    assert await settle(api) == ["snoozed", "escalated"]
    assert len((await api.get("/v1/alerts/deliveries")).json()["data"]) == 1
    later = datetime.now(UTC) + timedelta(hours=2)
    app_services.alerts.evaluator.clock = lambda: later
    assert await settle(api) == ["reminded"]
    assert len((await api.get("/v1/alerts/deliveries")).json()["data"]) == 2


async def test_limits_crud(api: httpx.AsyncClient) -> None:
    """PUT creates or replaces a limit, GET lists it, DELETE removes it; bad limits are 400."""
    assert (await api.put("/v1/limits", json=LIMIT)).json()["limit"] == 100
    assert (await api.put("/v1/limits", json=LIMIT | {"limit": 250})).json()["limit"] == 250
    [listed] = (await api.get("/v1/limits", params={"customerRef": "cus_1"})).json()["data"]
    assert (listed["metric"], listed["limit"]) == ("api_calls", 250)
    assert (await api.put("/v1/limits", json=LIMIT | {"limit": 0})).status_code == 400
    assert (
        await api.put("/v1/limits", json={"metric": "api_calls", "limit": 1})
    ).status_code == 400
    deleted = await api.delete("/v1/limits", params={"customerRef": "cus_1", "metric": "api_calls"})
    assert deleted.status_code == 204
    assert (await api.get("/v1/limits")).json()["data"] == []
