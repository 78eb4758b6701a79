"""API keys: hashed, scoped, tenant-bound, revocable, rotatable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from stripemeter.api.app import Services
from stripemeter.services.keys import hash_key
from stripemeter.store import tenants
from tests.conftest import issue

EVENT = {"metric": "api_calls", "customerRef": "cus_1", "quantity": 1, "ts": "2025-01-16T14:30:00Z"}


async def ingest(client: httpx.AsyncClient, key: str, **extra: object) -> httpx.Response:
    body = {"events": [EVENT], **extra}
    return await client.post(
        "/v1/events/ingest", json=body, headers={"Authorization": f"Bearer {key}"}
    )


async def test_a_request_without_a_key_is_401(client: httpx.AsyncClient) -> None:
    """No credential, no access, in the error envelope."""
    response = await client.post("/v1/events/ingest", json={"events": [EVENT]})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


async def test_an_unknown_key_is_401(client: httpx.AsyncClient) -> None:
    """A well-formed key that was never issued is refused like a malformed one."""
    fake = "sm_aaaaaaaaaaaa_" + "x" * 43
    for key in (fake, "not-a-key"):
        response = await ingest(client, key)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"


async def test_the_x_api_key_header_works_too(
    client: httpx.AsyncClient, app_services: Services
) -> None:
    """Keys may come in x-api-key instead of Authorization."""
    issued = await issue(app_services, "acme", "events:write")
    response = await client.post(
        "/v1/events/ingest", json={"events": [EVENT]}, headers={"x-api-key": issued.key}
    )
    assert response.status_code == 200


async def test_only_a_hash_of_the_key_is_stored(app_services: Services) -> None:
    """The database holds the SHA-256 of the key, never the key."""
    issued = await issue(app_services, "acme", "events:write")
    async with app_services.db.read() as conn:
        row = await tenants.get_key(conn, issued.id, "acme")
    assert row is not None
    assert issued.key not in row.values()
    assert row["secret_hash"] == hash_key(issued.key)


async def test_a_key_without_the_scope_is_403(
    client: httpx.AsyncClient, app_services: Services
) -> None:
    """A read-only key cannot ingest."""
    issued = await issue(app_services, "acme", "usage:read")
    response = await ingest(client, issued.key)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "missing_scope"


@pytest.mark.parametrize("where", ["body", "event", "query"])
async def test_a_foreign_tenant_id_is_403_and_changes_nothing(
    client: httpx.AsyncClient, app_services: Services, where: str
) -> None:
    """A tenantId naming another tenant, anywhere in the request, is refused before anything is stored."""
    issued = await issue(app_services, "acme", "events:write,events:read")
    headers = {"Authorization": f"Bearer {issued.key}"}
    body: dict[str, object] = {"events": [EVENT]}
    url = "/v1/events/ingest"
    if where == "body":
        body["tenantId"] = "globex"
    elif where == "event":
        body["events"] = [EVENT, {**EVENT, "quantity": 2, "tenantId": "globex"}]
    else:
        url += "?tenantId=globex"
    response = await client.post(url, json=body, headers=headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "tenant_mismatch"
    retry = await ingest(client, issued.key)
    assert retry.json()["accepted"] == 1  # the first request stored nothing


async def test_the_own_tenant_id_is_accepted(
    client: httpx.AsyncClient, app_services: Services
) -> None:
    """Naming the key's own tenant is allowed (the original product's clients do)."""
    issued = await issue(app_services, "acme", "events:write")
    response = await ingest(client, issued.key, tenantId="acme")
    assert response.status_code == 200


async def test_a_revoked_key_stops_working_at_once(
    client: httpx.AsyncClient, app_services: Services
) -> None:
    """Revocation in this process takes effect on the next request."""
    issued = await issue(app_services, "acme", "events:write")
    assert (await ingest(client, issued.key)).status_code == 200
    await app_services.keys.revoke(issued.id)
    response = await ingest(client, issued.key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "api_key_revoked"


async def test_an_expired_key_is_refused(client: httpx.AsyncClient, app_services: Services) -> None:
    """A key past its expiry is 401."""
    issued = await app_services.keys.create(
        "acme", "events:write", expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    response = await ingest(client, issued.key)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "api_key_expired"


async def test_rotation_issues_a_new_key_and_keeps_the_old_one_for_the_grace_period(
    client: httpx.AsyncClient, app_services: Services
) -> None:
    """After rotation both keys work until the old one's grace period ends."""
    old = await issue(app_services, "acme", "events:write")
    new = await app_services.keys.rotate(old.id, grace=timedelta(hours=1))
    assert new.key != old.key
    assert new.scopes == old.scopes
    assert (await ingest(client, new.key)).status_code == 200
    assert (await ingest(client, old.key)).status_code == 200
    zero = await app_services.keys.rotate(new.id, grace=timedelta(0))
    assert (await ingest(client, new.key)).status_code == 401
    assert (await ingest(client, zero.key)).status_code == 200


async def test_keys_are_listed_without_secrets(app_services: Services) -> None:
    """Listing shows prefixes and scopes, never the key or its hash."""
    issued = await issue(app_services, "acme", "events:write,usage:read")
    listed = await app_services.keys.list("acme")
    mine = next(k for k in listed if k["id"] == issued.id)
    assert mine["scopes"] == ["events:write", "usage:read"]
    assert issued.key not in str(listed)
    assert hash_key(issued.key) not in str(listed)
