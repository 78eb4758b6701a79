"""``stripemeter events list``: stored events, filtered, as a table, JSON or CSV."""

from __future__ import annotations

import csv
import itertools
import json
import sys
from typing import Any

import typer
from rich.table import Table

from stripemeter.cli.common import JsonOption, console, print_json
from stripemeter.cli.remote import ApiKeyOption, UrlOption, cell, connect
from stripemeter.client import EventRecord

app = typer.Typer(help="Read stored usage events.", no_args_is_help=True)
MAX_PAGE = 1000  # events per request, the server's largest page
CSV_FIELDS = ("id", "idempotencyKey", "metric", "customerRef", "quantity", "ts", "status",
              "heldReason", "source", "resourceId", "receivedAt", "meta")  # fmt: skip


@app.command("list")
def list_events(
    customer: str | None = typer.Option(None, "--customer", help="Only this customerRef."),
    metric: str | None = typer.Option(None, "--metric", help="Only this metric."),
    status: str | None = typer.Option(
        None, "--status", help="accepted, held (awaiting review), approved or dismissed."
    ),
    source: str | None = typer.Option(None, "--source", help="sdk, http, etl, import, …"),
    since: str | None = typer.Option(None, "--from", help="RFC 3339 or YYYY-MM-DD (inclusive)."),
    until: str | None = typer.Option(None, "--to", help="RFC 3339 or YYYY-MM-DD (exclusive)."),
    limit: int = typer.Option(
        100, "--limit", min=1, envvar="STRIPEMETER_EVENTS_LIMIT", help="At most this many events."
    ),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV (with a header) instead."),
    url: str = UrlOption,
    api_key: str | None = ApiKeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Events newest first, fetched page by page up to --limit."""
    with connect(url, api_key) as client:
        pages = client.list_events(
            customer, metric=metric, status=status, source=source,
            start_time=since, end_time=until, page_size=min(limit, MAX_PAGE),
        )  # fmt: skip
        records = list(itertools.islice(pages, limit))
    if as_json:
        print_json([r.raw for r in records])
    elif as_csv:
        write_csv(records)
    else:
        print_table(records)


def write_csv(records: list[EventRecord]) -> None:
    """One row per event, the server's field names as the header; meta as JSON text."""
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for record in records:
        row: list[Any] = []
        for name in CSV_FIELDS:
            value = record.raw.get(name)
            row.append(json.dumps(value, default=str) if name == "meta" and value else cell(value))
        writer.writerow(row)


def print_table(records: list[EventRecord]) -> None:
    """A Rich table of the events."""
    table = Table("id", "ts", "metric", "customer", "quantity", "status", "source", "key")
    for r in records:
        table.add_row(
            cell(r.id), r.ts.isoformat(timespec="seconds"), r.metric, r.customer_ref,
            str(r.quantity), cell(r.status), cell(r.source), r.idempotency_key,
        )  # fmt: skip
    console.print(table)
    console.print(f"{len(records)} events")
