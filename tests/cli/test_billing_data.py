"""``stripemeter mappings`` and ``stripemeter customers`` against a real server and FAKE Stripe."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Cli, stripe_form


def test_mapping_lifecycle(cli: Cli) -> None:
    """Create (checked against Stripe), list, get, update and delete a price mapping."""
    stripe_form(
        cli.stripe_url, "/v1/billing/meters", display_name="CLI calls", event_name="cli_calls",
        **{"default_aggregation[formula]": "sum"},
    )  # fmt: skip
    created = cli.json(
        "mappings", "create", "--metric", "cli_calls", "--aggregation", "sum",
        "--meter-event-name", "cli_calls",
    )  # fmt: skip
    mapping_id = created["id"]
    assert created["driver"] == "meters"
    assert created["meterId"].startswith("mtr_")

    listed, fetched, paused, missing_target = cli.run_many(
        [
            (["mappings", "list", "--metric", "cli_calls", "--json"], {}),
            (["mappings", "get", mapping_id], {}),
            (["mappings", "update", mapping_id, "--inactive", "--json"], {}),
            (["mappings", "create", "--metric", "x", "--aggregation", "sum", "--meter-event-name",
              "no_such_meter"], {}),
        ]
    )  # fmt: skip
    assert [m["id"] for m in json.loads(listed.stdout)] == [mapping_id]
    assert fetched.returncode == 0
    assert "cli_calls" in fetched.stdout
    assert json.loads(paused.stdout)["active"] is False
    assert missing_target.returncode == 1
    assert "no_such_meter" in missing_target.stderr or "meter" in missing_target.stderr

    deleted = cli.run("mappings", "delete", mapping_id)
    assert deleted.returncode == 0, deleted.stderr
    gone = cli.run("mappings", "get", mapping_id)
    assert gone.returncode == 1
    assert "no mapping" in gone.stderr


def test_customer_mappings_set_import_list_delete(cli: Cli, tmp_path: Path) -> None:
    """One mapping set by hand, more imported from CSV and from JSON on stdin, then removed."""
    stripe_ids = [stripe_form(cli.stripe_url, "/v1/customers")["id"] for _ in range(4)]
    path = tmp_path / "customers.csv"
    path.write_text(
        f"customer_ref,stripe_customer_id\ncli_b,{stripe_ids[1]}\ncli_c,{stripe_ids[2]}\n"
    )
    stdin = json.dumps([{"customerRef": "cli_d", "stripeCustomerId": stripe_ids[3]}])
    one, from_csv, from_stdin = cli.run_many(
        [
            (["customers", "set", "cli_a", stripe_ids[0], "--json"], {}),
            (["customers", "import", str(path), "--json"], {}),
            (["customers", "import", "-", "--json"], {"stdin": stdin}),
        ]
    )
    for done in (one, from_csv, from_stdin):
        assert done.returncode == 0, done.stderr
    assert json.loads(one.stdout)["stripeCustomerId"] == stripe_ids[0]
    assert json.loads(from_csv.stdout) == {"imported": 2}
    assert json.loads(from_stdin.stdout) == {"imported": 1}

    listed = cli.json("customers", "list")
    mine = {
        c["customerRef"]: c["stripeCustomerId"] for c in listed if c["customerRef"][:4] == "cli_"
    }
    assert mine == dict(zip(["cli_a", "cli_b", "cli_c", "cli_d"], stripe_ids, strict=True))

    deleted, bad_import = cli.run_many(
        [
            (["customers", "delete", "cli_a"], {}),
            (["customers", "import", "-"], {"stdin": '[{"customerRef": "cli_e"}]'}),
        ]
    )
    assert deleted.returncode == 0, deleted.stderr
    assert bad_import.returncode == 1
    assert "stripeCustomerId" in bad_import.stderr
    gone = cli.run("customers", "get", "cli_a")
    assert gone.returncode == 1
