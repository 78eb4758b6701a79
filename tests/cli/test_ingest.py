"""``stripemeter ingest``: files and stdin in every format, per-event problems, exit codes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
    usage = cli.json("usage", "cus_json")
    assert usage["metrics"][0]["value"] == 7.5


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
    events = cli.json("events", "list", "--customer", "cus_csv")
    assert len(events) == 5
    assert {e["meta"]["region"] for e in events} == {"eu"}
    assert sorted(e["quantity"] for e in events) == [1, 2, 3, 4, 5]


def test_events_document_and_conflicting_keys(cli: Cli, tmp_path: Path) -> None:
    """``{"events": [...]}`` works; a key re-used with another payload is a conflict (exit 1)."""
    path = tmp_path / "doc.json"
    path.write_text(json.dumps({"events": [event("cus_doc", 1, idempotencyKey="doc-1")]}))
    cli.json("ingest", str(path))
    path.write_text(json.dumps({"events": [event("cus_doc", 9, idempotencyKey="doc-1")]}))
    report = cli.json("ingest", str(path), code=1)
    assert report["conflicts"] == 1
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
    results = cli.run_many(
        [
            (["ingest", str(bad)], {}),
            (["ingest", str(unknown_column)], {}),
            (["ingest", str(tmp_path / "missing.json")], {}),
            (["ingest", str(good)], {"env": {"STRIPEMETER_API_KEY": ""}}),
            (["ingest", str(good)], {"env": {"STRIPEMETER_API_KEY": "sm_live_unknown"}}),
            (["ingest", str(good), "--url", "http://127.0.0.1:9", "--retries", "0"], {}),
        ]
    )
    assert [r.returncode for r in results] == [2] * 6, [r.stderr for r in results]
    messages = [r.stderr for r in results]
    assert "not valid JSON" in messages[0]
    assert "unknown CSV column 'customer'" in messages[1]
    assert "cannot read" in messages[2]
    assert "API key is required" in messages[3]
    assert "refused the key" in messages[4]
    assert "cannot reach http://127.0.0.1:9" in messages[5]
