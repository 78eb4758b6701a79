"""``stripemeter ingest``: files and stdin in every format, per-event problems, exit codes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from stripemeter import StripeMeterClient
from tests.cli.conftest import Cli


def recent(seconds: int = 60) -> str:
    """An event time a little in the past, RFC 3339."""
    return (datetime.now(UTC) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def event(customer: str, quantity: object, **fields: object) -> dict[str, object]:
    """A wire event of metric ``api_calls``."""
    return {"metric": "api_calls", "customerRef": customer, "quantity": quantity,
            "ts": recent(), **fields}  # fmt: skip


def test_a_json_file_is_counted_and_a_second_run_is_all_duplicates(
    cli: Cli, tmp_path: Path
) -> None:
    """A JSON array is accepted (exit 0); ingesting the same file again counts nothing twice."""
    path = tmp_path / "events.json"
    path.write_text(json.dumps([event("cus_json", 5), event("cus_json", "2.5")]))
    first = cli.json("ingest", str(path))
    second = cli.json("ingest", str(path))
    assert (first["accepted"], first["duplicates"], first["problems"]) == (2, 0, [])
    assert (second["accepted"], second["duplicates"]) == (0, 2)
    with StripeMeterClient(api_url=cli.url, api_key=cli.key, spool=False) as client:
        metric = client.get_usage("cus_json").get("api_calls")
    assert metric is not None
    assert metric.current == Decimal("7.5")


def test_jsonl_from_stdin_reports_rejected_events_with_their_line(cli: Cli) -> None:
    """JSON lines on stdin: an invalid event is listed with index, line, field and reason; exit 1."""
    lines = [event("cus_jsonl", 1), event("cus_jsonl", -3), event("", 2)]
    stdin = (
        "\n".join(json.dumps(e) for e in lines[:1])
        + "\n\n"
        + "\n".join(json.dumps(e) for e in lines[1:])
    )
    report = cli.json("ingest", "-", stdin=stdin, code=1)
    assert (report["events"], report["accepted"], report["rejected"]) == (3, 1, 2)
    problems = {p["index"]: p for p in report["problems"]}
    assert (problems[1]["line"], problems[1]["field"]) == (3, "quantity")
    assert problems[1]["code"] == "negative_quantity"
    assert (problems[2]["line"], problems[2]["field"]) == (4, "customerRef")


def test_csv_with_meta_columns_in_small_batches(cli: Cli, tmp_path: Path) -> None:
    """A CSV file with a header is sent in batches; indexes count across batches; meta is kept."""
    rows = ["metric,customer_ref,quantity,ts,meta.region"]
    rows += [f"api_calls,cus_csv,{n},{recent(n)},eu" for n in range(1, 6)]
    rows.append(f"api_calls,cus_csv,lots,{recent()},eu")  # index 5, in the third batch
    path = tmp_path / "events.csv"
    path.write_text("\n".join(rows) + "\n")
    done = cli.run("ingest", str(path), "--batch-size", "2")
    assert done.returncode == 1, done.stderr
    assert "6 events sent: 5 accepted" in done.stdout
    assert re.search(r"5\s+│\s+7\s+│\s+rejected\s+│\s+quantity", done.stdout), done.stdout
    events = cli.json("events", "list", "--customer", "cus_csv", in_process=True)
    assert len(events) == 5
    assert {e["meta"]["region"] for e in events} == {"eu"}
    assert sorted(e["quantity"] for e in events) == [1, 2, 3, 4, 5]


def test_events_document_and_conflicting_keys(cli: Cli, tmp_path: Path) -> None:
    """``{"events": [...]}`` works; a key re-used with another payload is a conflict (exit 1)."""
    with StripeMeterClient(api_url=cli.url, api_key=cli.key, spool=False) as client:
        client.ingest([{"metric": "api_calls", "customer_ref": "cus_doc", "quantity": 1,
                        "idempotency_key": "doc-1"}])  # fmt: skip
    path = tmp_path / "doc.json"
    path.write_text(
        json.dumps({"events": [event("cus_doc", 9, idempotencyKey="doc-1"), event("cus_doc", 2)]})
    )
    report = cli.json("ingest", str(path), code=1, in_process=True)
    assert (report["accepted"], report["conflicts"]) == (1, 1)
    assert report["problems"][0]["status"] == "conflict"
    assert report["problems"][0]["idempotencyKey"] == "doc-1"


def test_usage_errors_and_unreachable_server_exit_2(cli: Cli, tmp_path: Path) -> None:
    """Unreadable input, a missing or unknown key, or no server: exit 2 with a message."""
    good = tmp_path / "good.json"
    good.write_text(json.dumps([event("cus_err", 1)]))
    bad = tmp_path / "bad.json"
    bad.write_text("[{not json")
    unknown_column = tmp_path / "bad.csv"
    unknown_column.write_text("metric,customer,qty\napi_calls,c,1\n")
    no_server = cli.run("ingest", str(good), "--url", "http://127.0.0.1:9", "--retries", "0")
    assert no_server.returncode == 2
    assert "cannot reach http://127.0.0.1:9" in no_server.stderr
    cases = [
        (["ingest", str(bad)], {}, "not valid JSON"),
        (["ingest", str(unknown_column)], {}, "unknown CSV column 'customer'"),
        (["ingest", str(tmp_path / "missing.json")], {}, "cannot read"),
        (["ingest", str(good)], {"STRIPEMETER_API_KEY": ""}, "API key is required"),
        (["ingest", str(good)], {"STRIPEMETER_API_KEY": "sm_live_unknown"}, "refused the key"),
    ]
    for args, env, message in cases:
        done = cli.invoke(*args, env=env)
        assert done.returncode == 2, done.stdout
        assert message in done.stderr
