"""Console and widget security, over HTTP without a browser: sign-in, scopes, CSRF, cookies, tokens."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from stripemeter.api.app import Services
from stripemeter.domain.widget_tokens import (
    TokenExpired,
    TokenMalformed,
    derive_key,
    issue,
    verify,
)
from stripemeter.services.app_secret import AppSecret
from stripemeter.services.widget_tokens import KEY_PURPOSE
from tests.conftest import issue as issue_key

PAGES = [
    "/admin", "/admin/events", "/admin/events/1", "/admin/events/export.csv", "/admin/held",
    "/admin/customers", "/admin/customers/detail?ref=a", "/admin/mappings", "/admin/mappings/x",
    "/admin/stripe-customers", "/admin/pushes", "/admin/keys", "/admin/settings", "/admin/audit",
    "/admin/reconciliation", "/admin/reconciliation?period=2026-01", "/admin/explain",
    "/admin/adjustments", "/admin/alerts",
]  # fmt: skip
ACTIONS = [
    "/admin/logout", "/admin/held/1/approve", "/admin/held/1/dismiss", "/admin/mappings",
    "/admin/mappings/x", "/admin/mappings/x/active", "/admin/stripe-customers",
    "/admin/stripe-customers/delete", "/admin/keys", "/admin/keys/k/revoke", "/admin/keys/k/rotate",
    "/admin/settings/metrics", "/admin/settings/strict", "/admin/reconciliation/run",
    "/admin/reconciliation/suggestions/1/apply", "/admin/adjustments", "/admin/adjustments/1/approve",
    "/admin/adjustments/1/reject", "/admin/adjustments/1/revert",
    "/admin/alerts/states/1/acknowledge", "/admin/alerts/states/1/snooze",
]  # fmt: skip
# (path, scope it needs) for pages and actions a narrow key must not reach.
PAGE_SCOPES = [
    ("/admin/events", "events:read"), ("/admin/held", "events:read"),
    ("/admin/events/export.csv", "events:read"), ("/admin/customers", "usage:read"),
    ("/admin/mappings", "usage:read"), ("/admin/keys", "admin"), ("/admin/audit", "admin"),
    ("/admin/reconciliation", "usage:read"), ("/admin/explain", "usage:read"),
    ("/admin/adjustments", "usage:read"), ("/admin/alerts", "usage:read"),
]  # fmt: skip
ACTION_SCOPES = [
    ("/admin/held/1/approve", "adjustments:approve"), ("/admin/mappings", "mappings:write"),
    ("/admin/stripe-customers", "mappings:write"), ("/admin/keys", "admin"),
    ("/admin/settings/strict", "admin"), ("/admin/settings/metrics", "mappings:write"),
    ("/admin/reconciliation/run", "reconciliation:write"),
    ("/admin/reconciliation/suggestions/1/apply", "reconciliation:write"),
    ("/admin/adjustments", "reconciliation:write"),
    ("/admin/adjustments/1/approve", "adjustments:approve"),
    ("/admin/adjustments/1/reject", "adjustments:approve"),
    ("/admin/adjustments/1/revert", "adjustments:approve"),
    ("/admin/alerts/states/1/acknowledge", "mappings:write"),
    ("/admin/alerts/states/1/snooze", "mappings:write"),
]  # fmt: skip
FORM = {"content-type": "application/x-www-form-urlencoded"}


async def sign_in(client: httpx.AsyncClient, key: str) -> str:
    """Sign in through the form; returns the session's CSRF token (the cookie stays in the client)."""
    page = await client.get("/admin/login")
    login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert login_csrf is not None
    done = await client.post(
        "/admin/login", data={"csrf_token": login_csrf.group(1), "api_key": key, "next": "/admin"}
    )
    assert done.status_code == 303, done.text
    overview = await client.get("/admin")
    assert overview.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', overview.text)
    assert token is not None
    return token.group(1)


async def ingest(services: Services, tenant: str, events: list[dict[str, Any]]) -> None:
    """Count events for a tenant through the real ingest service."""
    key = await issue_key(services, tenant, "events:write")
    transport = httpx.ASGITransport(app=services.app)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        now = datetime.now(UTC).isoformat()
        body = {"events": [{"ts": now} | e for e in events]}
        response = await http.post(
            "/v1/events/ingest", json=body, headers={"Authorization": f"Bearer {key.key}"}
        )
        assert response.status_code == 200, response.text


class TestSignIn:
    """Every page and action needs a live session."""

    @pytest.mark.parametrize("path", PAGES)
    async def test_pages_redirect_to_sign_in(self, client: httpx.AsyncClient, path: str) -> None:
        """Without a session cookie every console page redirects to the sign-in form."""
        response = await client.get(path)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/admin/login?next=")

    @pytest.mark.parametrize("path", ACTIONS)
    async def test_actions_redirect_to_sign_in(self, client: httpx.AsyncClient, path: str) -> None:
        """Without a session cookie no action runs."""
        response = await client.post(path, data={"csrf_token": "x"})
        assert response.status_code == 303
        assert response.headers["location"].startswith("/admin/login")

    async def test_cookie_flags_and_no_key_in_cookie(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """The session cookie is HttpOnly, SameSite=Strict, scoped to /admin, and holds no key."""
        key = await issue_key(app_services, "acme")
        page = await client.get("/admin/login")
        login_cookie = page.headers["set-cookie"]
        assert "HttpOnly" in login_cookie
        assert "SameSite=strict" in login_cookie
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        done = await client.post(
            "/admin/login", data={"csrf_token": token.group(1), "api_key": key.key}
        )
        cookie = next(v for v in done.headers.get_list("set-cookie") if v.startswith("sm_session="))
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Path=/admin" in cookie
        assert "Secure" not in cookie  # plain http here; see the https test
        assert key.key not in cookie
        assert key.key.split("_", 2)[2] not in cookie  # the secret part (it may contain "_")

    async def test_secure_cookie_over_https(self, app_services: Services) -> None:
        """Served over https, the session cookie is also Secure."""
        key = await issue_key(app_services, "acme")
        transport = httpx.ASGITransport(app=app_services.app)  # type: ignore[attr-defined]
        async with httpx.AsyncClient(transport=transport, base_url="https://console.test") as http:
            page = await http.get("/admin/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token is not None
            done = await http.post(
                "/admin/login", data={"csrf_token": token.group(1), "api_key": key.key}
            )
        cookie = next(v for v in done.headers.get_list("set-cookie") if v.startswith("sm_session="))
        assert "Secure" in cookie

    async def test_login_needs_its_csrf_token(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """A sign-in post without the form's token (login CSRF) is refused."""
        key = await issue_key(app_services, "acme")
        response = await client.post("/admin/login", data={"api_key": key.key, "csrf_token": "x"})
        assert response.status_code == 403
        assert "sm_session" not in response.headers.get("set-cookie", "")

    async def test_bad_key_is_refused(self, client: httpx.AsyncClient) -> None:
        """An unknown key gets the form again with a 401 and no session."""
        page = await client.get("/admin/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        response = await client.post(
            "/admin/login", data={"csrf_token": token.group(1), "api_key": "sm_nope"}
        )
        assert response.status_code == 401
        assert "not accepted" in response.text

    async def test_no_open_redirect(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """After sign-in only console paths are followed."""
        key = await issue_key(app_services, "acme")
        page = await client.get("/admin/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        done = await client.post(
            "/admin/login",
            data={"csrf_token": token.group(1), "api_key": key.key, "next": "https://evil.test/"},
        )
        assert done.headers["location"] == "/admin"

    async def test_tampered_cookie_is_no_session(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """Changing one character of the session cookie signs you out."""
        await sign_in(client, (await issue_key(app_services, "acme")).key)
        value = client.cookies["sm_session"]
        client.cookies.clear()
        client.cookies.set("sm_session", value[:-1] + ("A" if value[-1] != "A" else "B"))
        assert (await client.get("/admin")).status_code == 303

    async def test_revoking_the_key_ends_the_session(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """A session opened with a key ends when the key is revoked."""
        key = await issue_key(app_services, "acme")
        await sign_in(client, key.key)
        await app_services.keys.revoke(key.id)
        assert (await client.get("/admin")).status_code == 303

    async def test_sign_out_ends_the_session(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """Signing out deletes the server-side session: the old cookie no longer works."""
        csrf = await sign_in(client, (await issue_key(app_services, "acme")).key)
        cookie = client.cookies["sm_session"]
        assert (await client.post("/admin/logout", data={"csrf_token": csrf})).status_code == 303
        client.cookies.set("sm_session", cookie, path="/admin")
        assert (await client.get("/admin")).status_code == 303

    async def test_security_headers(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """Console pages cannot be framed and are not cached; the fake Stripe is announced."""
        await sign_in(client, (await issue_key(app_services, "acme")).key)
        response = await client.get("/admin")
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["cache-control"] == "no-store"
        assert "Fake Stripe" in response.text


class TestCsrfAndScopes:
    """Actions need the session's CSRF token and the right scope; pages need their scope."""

    @pytest.mark.parametrize("path", ACTIONS)
    async def test_actions_need_the_csrf_token(
        self, client: httpx.AsyncClient, app_services: Services, path: str
    ) -> None:
        """A POST without, or with another, CSRF token is refused with 403 and changes nothing."""
        key = await issue_key(app_services, "acme")
        await sign_in(client, key.key)
        for form in ({}, {"csrf_token": "forged"}):
            response = await client.post(path, data=form)
            assert response.status_code == 403, path
        assert (await client.get("/admin")).status_code == 200  # still signed in

    async def test_forged_revoke_changes_nothing(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """A cross-site form posting to revoke a key without the token leaves the key working."""
        admin = await issue_key(app_services, "acme")
        victim = await issue_key(app_services, "acme", "events:write")
        await sign_in(client, admin.key)
        await client.post(f"/admin/keys/{victim.id}/revoke", data={"csrf_token": "guess"})
        assert (await app_services.keys.authenticate(victim.key)).key_id == victim.id

    @pytest.mark.parametrize(("path", "scope"), PAGE_SCOPES)
    async def test_pages_need_their_scope(
        self, client: httpx.AsyncClient, app_services: Services, path: str, scope: str
    ) -> None:
        """A key without the page's scope gets 403 naming it."""
        narrow = "usage:read" if scope != "usage:read" else "events:read"
        await sign_in(client, (await issue_key(app_services, "acme", narrow)).key)
        response = await client.get(path)
        assert response.status_code == 403
        assert scope in response.text

    @pytest.mark.parametrize(("path", "scope"), ACTION_SCOPES)
    async def test_actions_need_their_scope(
        self, client: httpx.AsyncClient, app_services: Services, path: str, scope: str
    ) -> None:
        """With a valid CSRF token but without the scope, an action is refused with 403."""
        csrf = await sign_in(client, (await issue_key(app_services, "acme", "events:read")).key)
        response = await client.post(path, data={"csrf_token": csrf, "strict": "1"})
        assert response.status_code == 403
        assert scope in response.text

    async def test_nav_hides_what_the_key_cannot_open(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """A usage:read key sees no link to events, keys or the audit log."""
        await sign_in(client, (await issue_key(app_services, "acme", "usage:read")).key)
        page = (await client.get("/admin")).text
        assert 'href="/admin/customers"' in page
        for hidden in ('href="/admin/events"', 'href="/admin/keys"', 'href="/admin/audit"'):
            assert hidden not in page

    async def test_pages_are_tenant_scoped(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """Another tenant's event is not found from this tenant's console."""
        await ingest(app_services, "globex", [{"metric": "m", "customerRef": "c", "quantity": 1}])
        await sign_in(client, (await issue_key(app_services, "acme")).key)
        assert (await client.get("/admin/events/1")).status_code == 404
        assert "globex" not in (await client.get("/admin/events")).text


class TestBillingSections:
    """Reconciliation, explain, adjustments and alerts: empty states, scopes, errors shown."""

    @pytest.mark.parametrize(
        ("path", "text"),
        [
            ("/admin/reconciliation?period=2026-01", "No reconciliation rows for 2026-01"),
            ("/admin/explain", "Pick a customer and a metric"),
            ("/admin/adjustments", "No adjustments"),
            ("/admin/alerts", "No alert rules yet"),
        ],
    )
    async def test_empty_pages_say_what_to_do(
        self, client: httpx.AsyncClient, app_services: Services, path: str, text: str
    ) -> None:
        """A new tenant's pages render with an empty state instead of an empty table."""
        await sign_in(client, (await issue_key(app_services, "acme")).key)
        response = await client.get(path)
        assert response.status_code == 200, response.text
        assert text in response.text

    async def test_bad_period_is_shown_as_an_error(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """A malformed month is an error banner with its code, not a crash."""
        await sign_in(client, (await issue_key(app_services, "acme")).key)
        response = await client.get("/admin/reconciliation?period=2026-13")
        assert response.status_code == 400
        assert "invalid_period" in response.text

    async def test_nav_and_buttons_follow_scopes(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """A usage:read key sees the new sections but no run, create or decide controls."""
        await sign_in(client, (await issue_key(app_services, "acme", "usage:read")).key)
        page = (await client.get("/admin")).text
        for shown in ("/admin/reconciliation", "/admin/adjustments", "/admin/alerts"):
            assert f'href="{shown}"' in page
        recon = (await client.get("/admin/reconciliation")).text
        assert "/admin/reconciliation/run" not in recon
        assert 'action="/admin/adjustments"' not in (await client.get("/admin/adjustments")).text

    async def test_nav_hides_sections_without_usage_read(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """An events:read key sees no link to reconciliation, adjustments or alerts."""
        await sign_in(client, (await issue_key(app_services, "acme", "events:read")).key)
        page = (await client.get("/admin")).text
        for hidden in ("/admin/reconciliation", "/admin/adjustments", "/admin/alerts"):
            assert f'href="{hidden}"' not in page

    async def test_failed_actions_show_the_error(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """Acting on something that does not exist shows the service's error and changes nothing."""
        csrf = await sign_in(client, (await issue_key(app_services, "acme")).key)
        for path in (
            "/admin/reconciliation/suggestions/999/apply",
            "/admin/adjustments/999/approve",
            "/admin/alerts/states/999/acknowledge",
        ):
            response = await client.post(path, data={"csrf_token": csrf})
            assert response.status_code == 404, (path, response.text)
            assert "banner-error" in response.text
        bad = await client.post(
            "/admin/adjustments",
            data={"csrf_token": csrf, "customerRef": "c", "metric": "m", "period": "2026-01",
                  "delta": "zero", "reason": "credit"},
        )  # fmt: skip
        assert bad.status_code == 400
        assert "invalid_delta" in bad.text

    async def test_create_and_reject_an_adjustment(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """An adjustment made in the console is pending, listed, and can be rejected."""
        csrf = await sign_in(client, (await issue_key(app_services, "acme")).key)
        form = {"csrf_token": csrf, "customerRef": "cust-1", "metric": "api_calls",
                "period": "2026-01", "delta": "-5", "reason": "credit", "note": "goodwill"}  # fmt: skip
        created = await client.post("/admin/adjustments", data=form)
        assert created.status_code == 303, created.text
        listed = (await client.get("/admin/adjustments?status=pending")).text
        assert "cust-1" in listed
        assert "goodwill" in listed
        found = re.search(r"/admin/adjustments/(\d+)/approve", listed)
        assert found is not None
        rejected = await client.post(
            f"/admin/adjustments/{found.group(1)}/reject", data={"csrf_token": csrf}
        )
        assert rejected.status_code == 303, rejected.text
        assert "cust-1" in (await client.get("/admin/adjustments?status=rejected")).text

    async def test_approve_needs_another_key_then_revert(self, app_services: Services) -> None:
        """The creator cannot approve their own adjustment; a second key approves, then reverts."""
        transport = httpx.ASGITransport(app=app_services.app)  # type: ignore[attr-defined]
        form = {"customerRef": "cust-2", "metric": "api_calls", "period": "2026-01",
                "delta": "5", "reason": "backfill"}  # fmt: skip
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as maker:
            csrf = await sign_in(maker, (await issue_key(app_services, "acme")).key)
            assert (await maker.post("/admin/adjustments", data=form | {"csrf_token": csrf})
                    ).status_code == 303  # fmt: skip
            page = (await maker.get("/admin/adjustments")).text
            found = re.search(r"/admin/adjustments/(\d+)/approve", page)
            assert found is not None
            number = found.group(1)
            own = await maker.post(f"/admin/adjustments/{number}/approve",
                                   data={"csrf_token": csrf})  # fmt: skip
            assert own.status_code in (403, 409), own.text
            assert "banner-error" in own.text
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as checker:
            csrf = await sign_in(checker, (await issue_key(app_services, "acme")).key)
            approved = await checker.post(f"/admin/adjustments/{number}/approve",
                                          data={"csrf_token": csrf})  # fmt: skip
            assert approved.status_code == 303, approved.text
            assert "/revert" in (await checker.get("/admin/adjustments?status=approved")).text
            reverted = await checker.post(f"/admin/adjustments/{number}/revert",
                                          data={"csrf_token": csrf, "note": "oops"})  # fmt: skip
            assert reverted.status_code == 303, reverted.text
            assert "cust-2" in (await checker.get("/admin/adjustments?status=reverted")).text

    async def test_acknowledge_and_snooze_a_real_alert(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """A fired rule shows a triggered state; acknowledging and snoozing it land in history."""
        rule = {"name": "big", "type": "usage_threshold", "metric": "api_calls", "thresholds": [10]}
        await app_services.alerts.rules.create("acme", rule)
        await ingest(app_services, "acme", [{"metric": "api_calls", "customerRef": "cus_1",
                                             "quantity": 50}])  # fmt: skip
        await app_services.alerts.evaluate("acme")
        csrf = await sign_in(client, (await issue_key(app_services, "acme")).key)
        page = (await client.get("/admin/alerts")).text
        assert "triggered" in page
        found = re.search(r"/admin/alerts/states/(\d+)/acknowledge", page)
        assert found is not None
        state = found.group(1)
        done = await client.post(
            f"/admin/alerts/states/{state}/acknowledge", data={"csrf_token": csrf}
        )
        assert done.status_code == 303, done.text
        snoozed = await client.post(
            f"/admin/alerts/states/{state}/snooze", data={"csrf_token": csrf, "for": "1d"}
        )
        assert snoozed.status_code == 303, snoozed.text
        page = (await client.get("/admin/alerts?status=acknowledged")).text
        assert "snoozed until" in page
        assert "acknowledged" in page
        bad = await client.post(
            f"/admin/alerts/states/{state}/snooze", data={"csrf_token": csrf, "for": "1y"}
        )
        assert bad.status_code == 400
        assert "banner-error" in bad.text


class TestWidgetTokens:
    """Widget tokens show one customer of one tenant, until they expire."""

    async def mint(self, services: Services, tenant: str, customer: str) -> str:
        key = await issue_key(services, tenant, "usage:read")
        transport = httpx.ASGITransport(app=services.app)  # type: ignore[attr-defined]
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.post(
                "/v1/widget/tokens",
                json={"customerRef": customer, "ttlSeconds": 600},
                headers={"Authorization": f"Bearer {key.key}"},
            )
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    async def test_minting_needs_usage_read(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """An events:write key cannot mint a widget token."""
        key = await issue_key(app_services, "acme", "events:write")
        response = await client.post(
            "/v1/widget/tokens",
            json={"customerRef": "c"},
            headers={"Authorization": f"Bearer {key.key}"},
        )
        assert response.status_code == 403

    async def test_bad_ttl_is_refused(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """A lifetime over a day is a 400 naming ttlSeconds."""
        key = await issue_key(app_services, "acme", "usage:read")
        response = await client.post(
            "/v1/widget/tokens",
            json={"customerRef": "c", "ttlSeconds": 10**6},
            headers={"Authorization": f"Bearer {key.key}"},
        )
        assert response.status_code == 400

    async def test_a_token_shows_only_its_customer_and_tenant(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """Same customerRef in two tenants, and two customers in one: the frame shows only its own."""
        await ingest(app_services, "acme", [
            {"metric": "api_calls", "customerRef": "shared", "quantity": 1111},
            {"metric": "secret_metric", "customerRef": "other", "quantity": 7777},
        ])  # fmt: skip
        await ingest(app_services, "globex", [
            {"metric": "globex_calls", "customerRef": "shared", "quantity": 2222},
        ])  # fmt: skip
        token = await self.mint(app_services, "acme", "shared")
        frame = await client.get("/widget/frame", params={"token": token})
        assert frame.status_code == 200
        assert "1,111" in frame.text
        assert "api_calls" in frame.text
        assert "2,222" not in frame.text
        assert "globex" not in frame.text
        assert "7,777" not in frame.text
        assert "secret_metric" not in frame.text
        assert frame.headers["referrer-policy"] == "no-referrer"
        # The query string cannot widen it: only the token's claims are used.
        widened = await client.get(
            "/widget/frame", params={"token": token, "customerRef": "other", "tenant": "globex"}
        )
        assert "7,777" not in widened.text
        assert "2,222" not in widened.text

    async def test_tampered_tokens_are_refused(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """Changing the claims, the signature, or signing with another secret gets a 401, no data."""
        await ingest(
            app_services, "acme", [{"metric": "api_calls", "customerRef": "b", "quantity": 5}]
        )
        token = await self.mint(app_services, "acme", "a")
        prefix, payload, signature = token.split(".")
        other = issue(derive_key(b"another-secret", KEY_PURPOSE), "acme", "b",
                      datetime.now(UTC), timedelta(minutes=5))  # fmt: skip
        forged_payload = other.split(".")[1]
        for bad in (
            f"{prefix}.{forged_payload}.{signature}",  # claims of customer b, signature of a
            f"{prefix}.{payload}.{signature[:-2]}AA",
            other,
            "",
            "wt1.x.y",
            "A" * 5000,
        ):
            response = await client.get("/widget/frame", params={"token": bad})
            assert response.status_code == 401, bad
            assert "cannot be shown" in response.text
            assert "api_calls" not in response.text

    async def test_expired_token_is_refused(
        self, client: httpx.AsyncClient, app_services: Services
    ) -> None:
        """A genuine but expired token gets a 401 saying it expired."""
        key = await app_services.app_secret.key(KEY_PURPOSE)
        stale = issue(
            key, "acme", "a", datetime.now(UTC) - timedelta(hours=1), timedelta(minutes=5)
        )
        response = await client.get("/widget/frame", params={"token": stale})
        assert response.status_code == 401
        assert "expired" in response.text

    async def test_embed_script_is_served(self, client: httpx.AsyncClient) -> None:
        """The loader is JavaScript at both documented paths."""
        for path in ("/widget/embed.js", "/widget.js"):
            response = await client.get(path)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/javascript")
            assert "data-token" in response.text


class TestSigningSecret:
    """Processes on one database agree on the generated secret; the setting wins when set."""

    async def test_generated_secret_is_shared(self, services: Services) -> None:
        """Two independent AppSecret objects on one database read the same secret."""
        first, second = AppSecret(services.db, None), AppSecret(services.db, None)
        assert await first.secret() == await second.secret()
        assert len(await first.secret()) >= 48

    async def test_configured_secret_is_used(self, services: Services) -> None:
        """STRIPEMETER_SECRET_KEY's value is the secret."""
        assert await AppSecret(services.db, "configured").secret() == b"configured"


class TestTokenDomain:
    """The pure token check."""

    def test_round_trip_and_expiry(self) -> None:
        """A token verifies until its expiry, then raises TokenExpired; another key never verifies."""
        key = derive_key(b"s", KEY_PURPOSE)
        now = datetime(2026, 1, 1, tzinfo=UTC)
        token = issue(key, "t", "c", now, timedelta(minutes=5))
        claims = verify(key, token, now + timedelta(minutes=4))
        assert (claims.tenant_id, claims.customer_ref) == ("t", "c")
        with pytest.raises(TokenExpired):
            verify(key, token, now + timedelta(minutes=5))
        with pytest.raises(TokenMalformed):
            verify(derive_key(b"s", "console-session"), token, now)
