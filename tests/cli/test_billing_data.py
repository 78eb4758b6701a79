"""``stripemeter mappings`` and ``stripemeter customers`` against a real server and FAKE Stripe.

The records a command reads or changes are made with the SDK first, so the commands themselves
can run side by side; their effects are checked with the SDK afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from stripemeter import StripeMeterClient
from stripemeter.client import NotFoundError
from tests.cli.conftest import Cli, stripe_form


@pytest.fixture
def sdk(cli: Cli) -> Iterator[StripeMeterClient]:
    """An SDK client of the test tenant."""
    with StripeMeterClient(api_url=cli.url, api_key=cli.key, spool=False) as client:
        yield client


def meter(cli: Cli, event_name: str) -> None:
    """A Billing Meter in the FAKE Stripe."""
    stripe_form(
        cli.stripe_url, "/v1/billing/meters", display_name=event_name, event_name=event_name,
        **{"default_aggregation[formula]": "sum"},
    )  # fmt: skip


def test_mapping_commands(cli: Cli, sdk: StripeMeterClient) -> None:
    """Create (checked against Stripe), list, get, update and delete price mappings."""
    for name in ("cli_new", "cli_kept", "cli_gone"):
        meter(cli, name)
    kept = sdk.create_mapping(metric="cli_kept", aggregation="sum", meter_event_name="cli_kept")
    gone = sdk.create_mapping(metric="cli_gone", aggregation="sum", meter_event_name="cli_gone")
    assert kept.id is not None
    assert gone.id is not None
    created, listed, fetched, paused, deleted = cli.run_many(
        [
            (["mappings", "create", "--metric", "cli_new", "--aggregation", "sum",
              "--meter-event-name", "cli_new", "--json"], {}),
            (["mappings", "list", "--metric", "cli_kept", "--json"], {}),
            (["mappings", "get", kept.id], {}),
            (["mappings", "update", kept.id, "--inactive", "--json"], {}),
            (["mappings", "delete", gone.id], {}),
        ]
    )  # fmt: skip
    no_meter = cli.invoke("mappings", "create", "--metric", "cli_x", "--aggregation", "sum",
                          "--meter-event-name", "no_such_meter")  # fmt: skip
    for done in (created, listed, fetched, paused, deleted):
        assert done.returncode == 0, done.stderr
    mapping = json.loads(created.stdout)
    assert mapping["driver"] == "meters"
    assert mapping["meterId"].startswith("mtr_")
    assert [m["id"] for m in json.loads(listed.stdout)] == [kept.id]
    assert "cli_kept" in fetched.stdout
    assert json.loads(paused.stdout)["active"] is False
    assert f"Deleted {gone.id}" in deleted.stdout
    with pytest.raises(NotFoundError):
        sdk.get_mapping(gone.id)
    assert no_meter.returncode == 1
    assert "error:" in no_meter.stderr


def test_customer_commands(cli: Cli, sdk: StripeMeterClient, tmp_path: Path) -> None:
    """Set one mapping, import more from CSV and from JSON on stdin, read and delete them."""
    stripe_ids = [stripe_form(cli.stripe_url, "/v1/customers")["id"] for _ in range(5)]
    sdk.set_customer("cli_gone", stripe_ids[4])
    path = tmp_path / "customers.csv"
    path.write_text(
        f"customer_ref,stripe_customer_id\ncli_b,{stripe_ids[1]}\ncli_c,{stripe_ids[2]}\n"
    )
    stdin = json.dumps([{"customerRef": "cli_d", "stripeCustomerId": stripe_ids[3]}])
    one, from_csv, deleted = cli.run_many(
        [
            (["customers", "set", "cli_a", stripe_ids[0], "--json"], {}),
            (["customers", "import", str(path), "--json"], {}),
            (["customers", "delete", "cli_gone"], {}),
        ]
    )
    from_stdin = cli.invoke("customers", "import", "-", "--json", stdin=stdin)
    incomplete = cli.invoke("customers", "import", "-", stdin='[{"customerRef": "cli_e"}]')
    for done in (one, from_csv, from_stdin, deleted):
        assert done.returncode == 0, done.stderr
    assert json.loads(one.stdout)["stripeCustomerId"] == stripe_ids[0]
    assert json.loads(from_csv.stdout) == {"imported": 2}
    assert json.loads(from_stdin.stdout) == {"imported": 1}
    assert incomplete.returncode == 1
    assert "stripeCustomerId" in incomplete.stderr

    listed, fetched = cli.run_many([(["customers", "list", "--json"], {}),
                                    (["customers", "get", "cli_a"], {})])  # fmt: skip
    mine = {c["customerRef"]: c["stripeCustomerId"] for c in json.loads(listed.stdout)}
    assert {k: v for k, v in mine.items() if k.startswith("cli_")} == dict(
        zip(["cli_a", "cli_b", "cli_c", "cli_d"], stripe_ids, strict=False)
    )
    assert f"cli_a → {stripe_ids[0]}" in fetched.stdout
