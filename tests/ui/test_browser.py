"""The console and the widget in a real browser (Debian's chromium through Playwright).

One ``stripemeter serve`` process on SQLite, talking to the fake Stripe over HTTP, is shared by the
tests of this module, which run in order like an operator's session. Each test saves a screenshot;
``scripts/screenshots`` sets ``STRIPEMETER_SCREENSHOTS`` to write them into docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright import sync_api

from stripemeter.domain.widget_tokens import derive_key, issue
from stripemeter.services.widget_tokens import KEY_PURPOSE
from stripemeter.stripe.fake.server import build_server
from tests.acceptance.support import create_key, free_port, migrate, running_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
STRIPE_KEY = "sk_test_console_ui"
SECRET = "ui-tests-" + secrets.token_hex(16)
TENANT = "acme"

# scripts/system-deps installs Debian's chromium; without it these tests fail rather than skip.


@dataclass
class Console:
    """The running server, its admin key, and a signed-in browser page."""

    url: str
    key: str
    page: Any
    shots: Path
    fake: str = ""

    def shot(self, name: str) -> None:
        """Save a full-page screenshot."""
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the HTTP API with the admin key."""
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=10, **kwargs)


def _fake_stripe() -> Iterator[str]:
    port = free_port()
    server = build_server("127.0.0.1", port, None)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "fake Stripe did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


def _seed(console: Console, fake_url: str) -> None:
    now = datetime.now(UTC)
    events: list[dict[str, Any]] = []
    customers = {"acme-analytics": 3, "globex": 2, "initech": 1}
    for i in range(120):
        ref = list(customers)[i % 3]
        at = now - timedelta(days=(i * 5) % 23, minutes=(i * 7) % 58, seconds=i)
        events.append({"metric": "api_calls", "customerRef": ref, "quantity": customers[ref] * 5 + i % 7,
                       "ts": at.isoformat(), "idempotencyKey": f"req-{i:04d}"})  # fmt: skip
        if i % 4 == 0:
            events.append({"metric": "gb_stored", "customerRef": ref, "quantity": f"{1 + i / 50:.2f}",
                           "ts": (at - timedelta(days=i % 20)).isoformat()})  # fmt: skip
    events.sort(key=lambda event: event["ts"])  # in time order, so none is late
    response = console.api("POST", "/v1/events/ingest", json={"events": events})
    assert response.status_code == 200, response.text
    # A last event three days after the others makes one earlier than the window late: held.
    late = [{"metric": "api_calls", "customerRef": "globex", "quantity": 40,
             "ts": (now - timedelta(days=4)).isoformat(), "idempotencyKey": "late-import-7"}]  # fmt: skip
    held = console.api("POST", "/v1/events/ingest", json={"events": late}).json()
    assert held["results"][0]["status"] == "held", held
    meter = httpx.post(
        f"{fake_url}/v1/billing/meters",
        headers={"Authorization": f"Bearer {STRIPE_KEY}"},
        data={"display_name": "API calls", "event_name": "api_calls",
              "default_aggregation[formula]": "sum"},
        timeout=10,
    )  # fmt: skip
    meter.raise_for_status()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A seeded server and a chromium page, not signed in yet."""
    cwd = tmp_path_factory.mktemp("console")
    shots = Path(os.environ.get("STRIPEMETER_SCREENSHOTS") or cwd / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{cwd / 'stripemeter.db'}"
    migrate(database_url, cwd)
    key = create_key(database_url, cwd, TENANT, "admin")
    fake = _fake_stripe()
    fake_url = next(fake)
    env = {
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPE_API_BASE": fake_url,
        "STRIPE_METER_EVENTS_BASE": fake_url,
        "STRIPEMETER_SECRET_KEY": SECRET,
        "STRIPEMETER_PUSH_INTERVAL_SECONDS": "0.5",
    }
    with running_server(database_url, cwd, env=env) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 860})
        page.set_default_timeout(10_000)
        state = Console(url, key, page, shots, fake_url)
        _seed(state, fake_url)
        yield state
        browser.close()
    next(fake, None)


def test_sign_in_and_overview(console: Console) -> None:
    """A visitor is sent to sign in; an API key opens the overview with real numbers."""
    page = console.page
    page.goto(console.url + "/admin")
    assert "/admin/login" in page.url
    console.shot("login")
    page.fill("input[name=api_key]", "sm_wrong_key")
    page.click("button[type=submit]")
    assert page.locator(".banner-error").inner_text().startswith("That key was not accepted")
    page.fill("input[name=api_key]", console.key)
    page.click("button[type=submit]")
    page.wait_for_url(console.url + "/admin")
    assert page.locator(".stat-value").first.inner_text() != "0"
    assert page.locator("svg.chart rect.chart-accepted").count() > 0
    cookie = next(c for c in page.context.cookies() if c["name"] == "sm_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/admin"
    assert console.key not in cookie["value"]
    console.shot("overview")


def test_find_an_event(console: Console) -> None:
    """Filtering by customer and metric finds an event whose page shows its idempotency key."""
    page = console.page
    page.goto(console.url + "/admin/events")
    page.fill("input[name=customerRef]", "initech")
    page.fill("input[name=metric]", "api_calls")
    page.click("text=Search")
    page.wait_for_url("**customerRef=initech**")
    rows = page.locator("table.table tbody tr")
    assert rows.count() > 0
    assert all("initech" in rows.nth(i).inner_text() for i in range(rows.count()))
    console.shot("events")
    page.goto(console.url + "/admin/events?customerRef=initech&metric=api_calls&status=accepted")
    page.locator("table.table tbody tr a").first.click()
    assert re.search(r"/admin/events/\d+$", page.url)
    assert re.fullmatch(r"req-\d{4}", page.locator(".kv code.wrap").inner_text())
    console.shot("event")
    export = page.context.request.get(console.url + "/admin/events/export.csv?customerRef=initech")
    assert export.status == 200
    assert export.text().startswith("id,idempotencyKey,metric")


def test_approve_a_held_event(console: Console) -> None:
    """The review queue lists the late event; approving it counts it and records the note."""
    page = console.page
    page.goto(console.url + "/admin/held")
    row = page.locator("table.table tbody tr")
    assert row.count() == 1
    assert "globex" in row.inner_text()
    assert "beyond_lateness_window" in row.inner_text()
    console.shot("review-queue")
    row.locator("input[name=note]").fill("late import from the batch job")
    row.locator("text=Approve").click()
    assert "Event approved" in page.locator(".banner-ok").inner_text()
    assert page.locator("text=Nothing to review").is_visible()
    listed = console.api("GET", "/v1/events/held", params={"status": "approved"}).json()
    assert [e["idempotencyKey"] for e in listed["events"]] == ["late-import-7"]
    page.goto(console.url + "/admin/audit")
    assert "held_event.approved" in page.locator("table.table").inner_text()
    console.shot("audit-log")


def test_customer_page(console: Console) -> None:
    """A customer's page shows each metric's value and a daily chart."""
    page = console.page
    page.goto(console.url + "/admin/customers")
    console.shot("customers")
    page.click("text=globex")
    page.wait_for_url("**/admin/customers/detail**")
    assert page.locator("h1").inner_text() == "globex"
    assert page.locator("svg.chart polyline.chart-line").count() == 2
    console.shot("customer")


def test_create_a_mapping(console: Console) -> None:
    """A mapping to a Stripe meter is validated against Stripe, created, then deactivated."""
    page = console.page
    page.goto(console.url + "/admin/mappings")
    assert page.locator("text=No price mappings yet").is_visible()
    form = page.locator("form[action='/admin/mappings']")
    form.locator("input[name=metric]").fill("api_calls")
    form.locator("input[name=meterEventName]").fill("no_such_meter")
    form.locator("button[type=submit]").click()
    page.locator(".banner-error").wait_for()  # Stripe has no such meter: shown, not saved
    form.locator("input[name=meterEventName]").fill("api_calls")
    form.locator("button[type=submit]").click()
    assert "Price mapping created" in page.locator(".banner-ok").inner_text()
    row = page.locator("table.table tbody tr", has_text="api_calls")
    assert "active" in row.inner_text()
    console.shot("mappings")
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("text=Deactivate").click()
    assert "Mapping deactivated" in page.locator(".banner-ok").inner_text()
    assert console.api("GET", "/v1/mappings").json()["data"][0]["active"] is False


def test_create_and_revoke_a_key(console: Console) -> None:
    """A new key is shown once and works; once revoked it is refused."""
    page = console.page
    page.goto(console.url + "/admin/keys")
    page.fill("input[name=name]", "billing backend")
    page.check("input[value='usage:read']")
    page.click("text=Create key")
    secret = page.locator("#new-key").inner_text()
    assert secret.startswith("sm_")
    console.shot("api-keys")
    headers = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(console.url + "/v1/metrics", headers=headers).status_code == 200
    page.goto(console.url + "/admin/keys")
    assert secret not in page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("table.table tbody tr", has_text="billing backend").locator("text=Revoke").click()
    assert "revoked" in page.locator(".banner-ok").inner_text()
    deadline = time.monotonic() + 10  # other processes see a revocation within the key cache TTL
    while httpx.get(console.url + "/v1/metrics", headers=headers).status_code != 401:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_settings_page(console: Console) -> None:
    """Metric settings can be changed from the settings page (and are shown)."""
    page = console.page
    page.goto(console.url + "/admin/settings")
    page.fill("input[name=metric]", "gb_stored")
    page.select_option("select[name=aggregation]", "max")
    page.fill("input[name=lateness_hours]", "72")
    page.fill("input[name=unit]", "GB")
    page.click("text=Save metric")
    assert "Metric settings saved" in page.locator(".banner-ok").inner_text()
    assert "3 d" in page.locator("table.table").inner_text()
    console.shot("settings")


def _fresh_page(console: Console) -> Any:
    """A new tab: a blank page opened from the console would inherit its Content-Security-Policy."""
    browser = console.page.context.browser
    return browser.new_context(viewport={"width": 900, "height": 680}).new_page()


def _host_page(console: Console, token: str, theme: str) -> str:
    """A customer-facing page of the tenant's app embedding the widget."""
    return (
        "<!doctype html><html><body style='margin:0;padding:32px;background:"
        f"{'#020617' if theme == 'dark' else '#f1f5f9'};font-family:sans-serif'>"
        f"<h2 style='color:{'#e2e8f0' if theme == 'dark' else '#0f172a'}'>Your plan</h2>"
        f"<div style='max-width:620px'><script src='{console.url}/widget/embed.js' "
        f"data-token='{token}' data-theme='{theme}' data-height='520'></script></div></body></html>"
    )


def test_widget_with_a_valid_token(console: Console) -> None:
    """The embed script injects a frame showing one customer's usage, in both themes."""
    minted = console.api("POST", "/v1/widget/tokens", json={"customerRef": "globex"})
    assert minted.status_code == 201, minted.text
    token = minted.json()["token"]
    direct = httpx.get(minted.json()["frameUrl"], timeout=10)
    assert direct.status_code == 200, direct.text
    page = _fresh_page(console)
    for theme in ("light", "dark"):
        page.set_content(_host_page(console, token, theme))
        frame = page.frame_locator("iframe")
        frame.locator(".w-metric").first.wait_for()
        text = frame.locator("body").inner_text()
        assert "api_calls" in text
        assert "gb_stored" in text
        assert "initech" not in text
        page.screenshot(path=str(console.shots / f"widget-{theme}.png"), full_page=True)


def test_widget_with_an_expired_token(console: Console) -> None:
    """An expired token shows a clear error and no usage."""
    key = derive_key(SECRET.encode(), KEY_PURPOSE)
    stale = issue(
        key, TENANT, "globex", datetime.now(UTC) - timedelta(hours=2), timedelta(minutes=15)
    )
    page = _fresh_page(console)
    page.set_content(_host_page(console, stale, "light"))
    frame = page.frame_locator("iframe")
    frame.locator(".w-error").wait_for()
    assert "expired" in frame.locator(".w-error").inner_text()
    assert frame.locator(".w-metric").count() == 0
    page.screenshot(path=str(console.shots / "widget-expired.png"), full_page=True)


def _stripe(console: Console, path: str, **form: str) -> Any:
    """A call straight to the fake Stripe, as the server's key (test mode)."""
    response = httpx.post(
        console.fake + path,
        headers={"Authorization": f"Bearer {STRIPE_KEY}"},
        data=form,
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def test_apply_a_reconciliation_suggestion(console: Console) -> None:
    """Extra usage sent straight to Stripe is drift; Apply compensates it and the row turns ok."""
    _stripe(console, "/v1/billing/meters", display_name="Reports", event_name="reports_run",
            **{"default_aggregation[formula]": "sum"})  # fmt: skip
    stripe_customer = _stripe(console, "/v1/customers")["id"]
    mapping = console.api("POST", "/v1/mappings", json={"metric": "reports_run",
                          "aggregation": "sum", "meterEventName": "reports_run"})  # fmt: skip
    assert mapping.status_code == 201, mapping.text
    customer = console.api("POST", "/v1/customers",
                           json={"customerRef": "hooli", "stripeCustomerId": stripe_customer})  # fmt: skip
    assert customer.status_code == 201, customer.text
    now = datetime.now(UTC)
    events = [{"metric": "reports_run", "customerRef": "hooli", "quantity": 10 + i,
               "ts": (now - timedelta(minutes=5 - i)).isoformat()} for i in range(3)]  # fmt: skip
    assert console.api("POST", "/v1/events/ingest", json={"events": events}).status_code == 200
    flushed = console.api("POST", "/v1/pushes/flush", json={})
    assert flushed.status_code == 200, flushed.text
    # Someone else reports usage for the customer directly to Stripe: Stripe now says 7 more.
    _stripe(console, "/v1/billing/meter_events", event_name="reports_run",
            **{"payload[stripe_customer_id]": stripe_customer, "payload[value]": "7"})  # fmt: skip
    ran = console.api("POST", "/v1/reconciliation/run", json={"customerRef": "hooli"})
    assert ran.status_code == 200, ran.text
    statuses = {r["metric"]: r["status"] for r in ran.json()["reports"]}
    assert statuses.get("reports_run") == "drift", ran.text

    page = console.page
    page.goto(console.url + "/admin")
    page.click("nav >> text=Reconciliation")
    page.wait_for_url("**/admin/reconciliation**")
    row = page.locator("#recon-report tbody tr", has_text="hooli")
    assert "row-drift" in (row.get_attribute("class") or "")
    assert row.locator(".recon-status").inner_text() == "drift"
    console.shot("reconciliation-drift")
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button", has_text="Apply").click()
    assert "Repair applied" in page.locator(".banner-ok").inner_text()
    row = page.locator("#recon-report tbody tr", has_text="hooli")
    if row.locator(".recon-status").inner_text() != "ok":  # the page offers a fresh run
        page.click("text=Run reconciliation now")
        row = page.locator("#recon-report tbody tr", has_text="hooli")
    assert row.locator(".recon-status").inner_text() == "ok"
    assert "applied" in row.inner_text()
    console.shot("reconciliation")
    row.locator("text=explain").click()
    page.wait_for_url("**/admin/explain**")
    assert "reports_run" in page.locator("h1").inner_text()
