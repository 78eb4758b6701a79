"""``stripemeter usage`` and ``stripemeter events list`` against a real server."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from stripemeter import StripeMeterClient
from tests.cli.conftest import Cli


def seed(cli: Cli, customer: str) -> None:
    """Three api_calls events and one storage event, sent with the SDK."""
    at = datetime.now(UTC) - timedelta(minutes=2)
    with StripeMeterClient(api_url=cli.url, api_key=cli.key, spool=False) as client:
        client.ingest(
            [
                {"metric": "api_calls", "customer_ref": customer, "quantity": 10, "ts": at},
                {"metric": "api_calls", "customer_ref": customer, "quantity": 5, "ts": at},
                {"metric": "api_calls", "customer_ref": customer, "quantity": "0.5", "ts": at},
                {"metric": "storage_gb", "customer_ref": customer, "quantity": 3, "ts": at,
                 "meta": {"bucket": "b1"}},
            ]
        )  # fmt: skip


def test_usage_and_events_in_every_output_format(cli: Cli) -> None:
    """Tables for people, JSON and CSV for scripts; filters narrow the list; a bad filter exits 1."""
    seed(cli, "cus_reads")
    table, exported = cli.run_many(
        [
            (["usage", "cus_reads"], {}),
            (["events", "list", "--customer", "cus_reads", "--csv", "--limit", "2"], {}),
        ]
    )
    current = cli.invoke("usage", "cus_reads", "--metric", "api_calls", "--json")
    history = cli.invoke("usage", "cus_reads", "--history", "--metric", "api_calls", "--json")
    listed = cli.invoke(
        "events", "list", "--customer", "cus_reads", "--metric", "api_calls", "--json"
    )
    unknown = cli.invoke("usage", "cus_nobody", "--json")
    refused = cli.invoke("events", "list", "--status", "bogus")
    for done in (table, current, history, listed, exported, unknown):
        assert done.returncode == 0, done.stderr
    assert "api_calls" in table.stdout
    assert "15.5" in table.stdout
    assert "storage_gb" in table.stdout

    body = json.loads(current.stdout)
    assert [m["metric"] for m in body["metrics"]] == ["api_calls"]
    assert body["metrics"][0]["value"] == 15.5

    (series,) = json.loads(history.stdout)
    assert series["metric"] == "api_calls"
    assert series["interval"] == "day"
    assert series["totals"]["value"] == 15.5

    events = json.loads(listed.stdout)
    assert sorted(e["quantity"] for e in events) == [0.5, 5, 10]

    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert len(rows) == 2
    assert set(rows[0]) >= {"id", "idempotencyKey", "metric", "customerRef", "quantity", "ts"}

    assert json.loads(unknown.stdout)["metrics"] == []
    assert refused.returncode == 1
    assert "status" in refused.stderr
