"""``stripemeter reconcile`` against a real server and FAKE Stripe."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import httpx

from stripemeter import StripeMeterClient
from tests.cli.conftest import Cli, stripe_form


def test_reconcile_reports_parity_then_catches_drift(cli: Cli) -> None:
    """Pushed totals reconcile as ok (exit 0); an event sent to Stripe behind our back is drift (1)."""
    stripe_form(
        cli.stripe_url, "/v1/billing/meters", display_name="recon_calls", event_name="recon_calls",
        **{"default_aggregation[formula]": "sum"},
    )  # fmt: skip
    customer = stripe_form(cli.stripe_url, "/v1/customers", name="Recon Ltd")
    now = datetime.now(UTC).replace(microsecond=0)
    with StripeMeterClient(api_url=cli.url, api_key=cli.key, spool=False) as sdk:
        sdk.create_mapping(metric="recon_calls", aggregation="sum", meter_event_name="recon_calls")
        sdk.set_customer("cus_recon", customer["id"])
        sdk.track(metric="recon_calls", customer_ref="cus_recon", quantity=12, ts=now)
        sdk.flush()
    headers = {"Authorization": f"Bearer {cli.key}"}
    httpx.post(
        f"{cli.url}/v1/pushes/flush", json={"customerRef": "cus_recon"}, headers=headers, timeout=60
    )

    ok = cli.run("reconcile", "--customer", "cus_recon", "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (report,) = [r for r in json.loads(ok.stdout)["reports"] if r["metric"] == "recon_calls"]
    assert (report["status"], report["localTotal"], report["stripeTotal"]) == ("ok", 12, 12)

    stripe_form(
        cli.stripe_url, "/v1/billing/meter_events", event_name="recon_calls",
        timestamp=str(int(time.time()) - 60),
        **{"payload[stripe_customer_id]": customer["id"], "payload[value]": "5"},
    )  # fmt: skip
    drift = cli.invoke("reconcile", "--customer", "cus_recon")
    assert drift.returncode == 1, drift.stdout + drift.stderr
    assert "drift" in drift.stdout
