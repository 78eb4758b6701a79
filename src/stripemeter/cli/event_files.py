"""Reading usage events from files: a JSON array, ``{"events": [...]}``, JSON lines, or CSV.

Events are returned in wire form (camelCase, as the ingest API takes them) and are not validated
here: the server checks each one and says why it rejects it. Quantities stay exact (decimal
text); events without an ``idempotencyKey`` get one from the server, derived from their content,
so ingesting the same file twice counts every event once.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any


class FileFormat(StrEnum):
    """How an event file is written."""

    AUTO = "auto"
    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"


# CSV header names (either spelling) → wire names; ``meta.KEY`` columns fill ``meta``.
CSV_COLUMNS = {
    "metric": "metric",
    "customerref": "customerRef",
    "customer_ref": "customerRef",
    "quantity": "quantity",
    "ts": "ts",
    "timestamp": "ts",
    "idempotencykey": "idempotencyKey",
    "idempotency_key": "idempotencyKey",
    "resourceid": "resourceId",
    "resource_id": "resourceId",
    "source": "source",
    "meta": "meta",
}


class EventFileError(ValueError):
    """The input cannot be read as events (the message says where)."""


@dataclass(frozen=True, slots=True)
class EventFile:
    """Events in wire form, with the input line each came from (None for a JSON document)."""

    events: list[Any]
    lines: list[int | None]
    format: FileFormat


def detect_format(text: str, name: str | None) -> FileFormat:
    """The format from the file name's extension, else from the first character of the text."""
    lowered = (name or "").lower()
    for suffix, found in ((".csv", FileFormat.CSV), (".jsonl", FileFormat.JSONL),
                          (".ndjson", FileFormat.JSONL), (".json", FileFormat.JSON)):  # fmt: skip
        if lowered.endswith(suffix):
            return found
    head = text.lstrip()[:1]
    if head == "[":
        return FileFormat.JSON
    if head == "{":
        first_line = text.lstrip().split("\n", 1)[0]
        try:
            json.loads(first_line)
        except ValueError:
            return FileFormat.JSON  # a document spread over several lines
        return FileFormat.JSONL if "\n" in text.strip() else FileFormat.JSON
    return FileFormat.CSV


def parse_events(
    text: str, fmt: FileFormat = FileFormat.AUTO, name: str | None = None
) -> EventFile:
    """Read every event of ``text``; raises ``EventFileError`` for input that is not events."""
    if fmt is FileFormat.AUTO:
        fmt = detect_format(text, name)
    if fmt is FileFormat.JSON:
        events = _json_document(text)
        return EventFile([_exact(e) for e in events], [None] * len(events), fmt)
    if fmt is FileFormat.JSONL:
        return _json_lines(text)
    return _csv(text)


def _loads(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def _json_document(text: str) -> list[Any]:
    try:
        body = _loads(text)
    except ValueError as exc:
        raise EventFileError(f"not valid JSON: {exc}") from None
    if isinstance(body, dict) and "events" in body:
        body = body["events"]
    elif isinstance(body, dict):
        body = [body]  # a single event
    if not isinstance(body, list):
        raise EventFileError('expected a JSON array of events or {"events": [...]}')
    return body


def _json_lines(text: str) -> EventFile:
    events: list[Any] = []
    lines: list[int | None] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(_exact(_loads(line)))
        except ValueError as exc:
            raise EventFileError(f"line {number} is not valid JSON: {exc}") from None
        lines.append(number)
    return EventFile(events, lines, FileFormat.JSONL)


def _csv(text: str) -> EventFile:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise EventFileError("the CSV input is empty (a header row is required)")
    columns = [_column(name) for name in header]
    events: list[Any] = []
    lines: list[int | None] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(columns):
            raise EventFileError(f"line {reader.line_num} has more cells than the header")
        event: dict[str, Any] = {}
        for column, value in zip(columns, row, strict=False):
            if value.strip():
                _put(event, column, value.strip(), reader.line_num)
        events.append(event)
        lines.append(reader.line_num)
    return EventFile(events, lines, FileFormat.CSV)


def _column(name: str) -> str:
    key = name.strip()
    if key.lower().startswith("meta.") and len(key) > len("meta."):
        return key
    wire = CSV_COLUMNS.get(key.lower())
    if wire is None:
        known = "metric, customerRef, quantity, ts, idempotencyKey, resourceId, source, meta"
        raise EventFileError(f"unknown CSV column {name!r} (known: {known}, meta.KEY)")
    return wire


def _put(event: dict[str, Any], column: str, value: str, line: int) -> None:
    if column == "meta":
        try:
            meta = _exact(_loads(value), top=False)
        except ValueError:
            meta = None
        if not isinstance(meta, dict):
            raise EventFileError(f"line {line}: meta is not a JSON object")
        event["meta"] = {**meta, **event.get("meta", {})}
    elif column.lower().startswith("meta."):
        event.setdefault("meta", {})[column[len("meta.") :]] = value
    else:
        event[column] = value


def _exact(value: Any, *, top: bool = True) -> Any:
    """Decimals as exact text for ``quantity``; as plain numbers elsewhere (meta is free JSON)."""
    if isinstance(value, dict):
        out = {k: _exact(v, top=False) for k, v in value.items()}
        if top and isinstance(value.get("quantity"), Decimal):
            out["quantity"] = _decimal_text(value["quantity"])
        return out
    if isinstance(value, list):
        return [_exact(v, top=False) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    return value


def _decimal_text(number: Decimal) -> str:
    """``1.50`` → ``1.5``, ``1E+2`` → ``100``: exact, without an exponent."""
    return "0" if number == 0 else format(number.normalize(), "f")


def batches(events: Sequence[Any], size: int) -> list[tuple[int, Sequence[Any]]]:
    """``(offset, events)`` slices of at most ``size`` events."""
    return [(start, events[start : start + size]) for start in range(0, len(events), size)]
