"""``stripemeter ingest FILE|-``: send usage events from a file or stdin to a server, in batches."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stripemeter.cli.common import JsonOption, console, err_console, print_json
from stripemeter.cli.event_files import EventFile, EventFileError, FileFormat, batches, parse_events
from stripemeter.cli.remote import (
    EXIT_REFUSED,
    ApiKeyOption,
    RetriesOption,
    UrlOption,
    connect,
    fail,
)
from stripemeter.client import IngestResult, StripeMeterClient, StripeMeterError

MAX_BATCH = 1000  # events per request, the server's limit
SHOWN_PROBLEMS = 50  # rejected/conflicting events listed in the human output
STATUSES = ("accepted", "duplicate", "conflict", "held", "rejected")
TOTAL_NAMES = {"accepted": "accepted", "duplicate": "duplicates", "conflict": "conflicts",
               "held": "held", "rejected": "rejected"}  # the ingest API's names  # fmt: skip


def register(app: typer.Typer) -> None:
    """Add ``ingest`` to the root command."""
    app.command("ingest")(ingest)


@dataclass
class IngestReport:
    """What the server answered for a whole input."""

    total: int
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    problems: list[dict[str, Any]] = field(default_factory=list)

    def add(self, offset: int, result: IngestResult, source: EventFile) -> None:
        """Count one batch's answer; rejected and conflicting events are kept with their place."""
        for item in result.results:
            self.counts[item.status] = self.counts.get(item.status, 0) + 1
            if item.status not in ("rejected", "conflict"):
                continue
            index = offset + item.index
            self.problems.append(
                {
                    "index": index,
                    "line": source.lines[index] if 0 <= index < len(source.lines) else None,
                    "status": item.status,
                    "idempotencyKey": item.idempotency_key,
                    "field": item.error.field if item.error else None,
                    "code": item.error.code if item.error else None,
                    "reason": item.error.message if item.error else item.reason,
                }
            )

    @property
    def sent(self) -> int:
        """Events the server answered for."""
        return sum(self.counts.values())

    def to_wire(self) -> dict[str, Any]:
        """The ``--json`` document."""
        totals = {TOTAL_NAMES[s]: self.counts[s] for s in STATUSES}
        return {"events": self.total, "sent": self.sent, **totals, "problems": self.problems}


def ingest(
    source: str = typer.Argument(..., metavar="FILE|-", help="An event file, or - for stdin."),
    file_format: FileFormat = typer.Option(
        FileFormat.AUTO,
        "--format",
        envvar="STRIPEMETER_INGEST_FORMAT",
        help="json (array or {events: [...]}), jsonl, csv (with a header), or auto.",
    ),
    batch_size: int = typer.Option(
        MAX_BATCH, "--batch-size", min=1, max=MAX_BATCH, envvar="STRIPEMETER_INGEST_BATCH_SIZE"
    ),
    retries: int = RetriesOption,
    url: str = UrlOption,
    api_key: str | None = ApiKeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Send usage events; re-sending the same file counts nothing twice (duplicates).

    Exit status: 0 all counted, 1 some rejected or conflicting, 2 unreadable input or no server.
    """
    events = read_input(source, file_format)
    with connect(url, api_key, retries) as client:
        report = send_all(client, events, batch_size, quiet=as_json)
    if as_json:
        print_json(report.to_wire())
    else:
        print_report(report)
    if report.problems:
        raise typer.Exit(EXIT_REFUSED)


def read_input(source: str, file_format: FileFormat) -> EventFile:
    """Parse the file (or stdin); unreadable input is a usage error."""
    try:
        if source == "-":
            text, name = sys.stdin.read(), None
        else:
            text, name = Path(source).read_text(encoding="utf-8-sig"), source
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {source}: {exc}")
    try:
        return parse_events(text, file_format, name)
    except EventFileError as exc:
        fail(f"{source}: {exc}")


def send_all(
    client: StripeMeterClient, source: EventFile, batch_size: int, *, quiet: bool
) -> IngestReport:
    """Send every batch in order, with a progress bar on stderr."""
    report = IngestReport(total=len(source.events))
    columns = (TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=quiet) as bar:
        task = bar.add_task("ingest", total=len(source.events))
        for offset, chunk in batches(source.events, batch_size):
            try:
                result = client.ingest_wire(chunk)
            except StripeMeterError:
                err_console.print(
                    f"stopped after {report.sent} of {report.total} events; sending the same "
                    "input again is safe (events already counted come back as duplicates)"
                )
                raise
            report.add(offset, result, source)
            bar.advance(task, len(chunk))
    return report


def print_report(report: IngestReport) -> None:
    """The totals, then every rejected or conflicting event (the first ones)."""
    totals = ", ".join(f"{report.counts[s]} {s}" for s in STATUSES)
    console.print(f"{report.sent} events sent: {totals}")
    if not report.problems:
        return
    table = Table("index", "line", "status", "field", "reason", title="not counted")
    for problem in report.problems[:SHOWN_PROBLEMS]:
        reason = problem["reason"] or ""
        if problem["status"] == "conflict":
            reason = f"{reason} (idempotencyKey {problem['idempotencyKey']})".strip()
        table.add_row(
            str(problem["index"]),
            "" if problem["line"] is None else str(problem["line"]),
            problem["status"],
            problem["field"] or "",
            reason,
        )
    console.print(table)
    hidden = len(report.problems) - SHOWN_PROBLEMS
    if hidden > 0:
        console.print(f"… and {hidden} more (use --json for all)")
