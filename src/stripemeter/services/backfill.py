"""Backfill: stream a JSONL or CSV file of events through the real ingest path, in batches.

Memory stays constant whatever the file size: lines are read one at a time and at most one batch
is held. Events keep their idempotency keys (or get the derived key ingest gives keyless events),
so running the same file again reports every event as a duplicate and changes nothing. A dry run
validates every line and looks the keys up in the ledger without writing.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from stripemeter.domain.errors import InvalidInput, NotFound
from stripemeter.domain.events import EventLimits, Rejection, Source, parse_event
from stripemeter.services.ingest import IngestService
from stripemeter.store.database import Database
from stripemeter.store.tables import backfill_operations, events

BATCH = 500  # events per ingest call
MAX_ERRORS = 100  # rejections kept with their line numbers
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
}


def utcnow() -> datetime:
    """The current UTC time."""
    return datetime.now(UTC)


@dataclass
class Progress:
    """Counts so far."""

    total: int = 0
    accepted: int = 0
    duplicate: int = 0
    held: int = 0
    rejected: int = 0
    conflict: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add(self, status: str, line: int, reason: str | None = None) -> None:
        """Count one event's result."""
        self.total += 1
        setattr(self, status, getattr(self, status) + 1)
        if status in ("rejected", "conflict") and len(self.errors) < MAX_ERRORS:
            self.errors.append({"line": line, "status": status, "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        """Column values."""
        return {
            "total": self.total,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "held": self.held,
            "rejected": self.rejected,
            "conflict": self.conflict,
            "errors": self.errors,
        }


def detect_format(first_line: str, name: str | None) -> str:
    """``jsonl`` or ``csv`` from the name or the first line."""
    if name and name.lower().endswith(".csv"):
        return "csv"
    if name and name.lower().endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "jsonl" if first_line.lstrip().startswith("{") else "csv"


def read_lines(lines: Iterable[str], fmt: str) -> Iterator[tuple[int, object]]:
    """``(line number, event or Rejection)`` for each non-empty line, lazily."""
    if fmt == "jsonl":
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line, parse_float=Decimal)
            except ValueError:
                yield number, Rejection("line", "invalid_json", f"line {number} is not JSON")
                continue
            if isinstance(event, dict) and isinstance(event.get("quantity"), Decimal):
                event["quantity"] = format(event["quantity"], "f")
            yield number, event
        return
    reader = csv.reader(lines)
    header = next(reader, None)
    if not header:
        return
    columns = [CSV_COLUMNS.get(h.strip().lower(), h.strip()) for h in header]
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        yield (
            reader.line_num,
            {c: v.strip() for c, v in zip(columns, row, strict=False) if v.strip()},
        )


async def batches(
    items: Iterator[tuple[int, object]], size: int
) -> AsyncIterator[list[tuple[int, object]]]:
    """Group lazily into lists of at most ``size``."""
    batch: list[tuple[int, object]] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
            await asyncio.sleep(0)
    if batch:
        yield batch


class BackfillService:
    """Runs backfill operations in the background and reports their progress."""

    def __init__(
        self,
        db: Database,
        ingest: IngestService,
        limits: EventLimits,
        *,
        clock: Callable[[], datetime] = utcnow,
        files_dir: Path | None = None,
    ) -> None:
        self.db = db
        self.files_dir = files_dir
        self.ingest = ingest
        self.limits = limits
        self.clock = clock
        self._tasks: set[asyncio.Task[Any]] = set()

    async def create(
        self,
        tenant_id: str,
        *,
        data: str | None,
        path: str | None,
        fmt: str | None,
        dry_run: bool,
        actor: str,
    ) -> dict[str, Any]:
        """Record an operation and start it in the background."""
        if (data is None) == (path is None):
            raise InvalidInput(
                "send a body of events, or a path the server can read", code="no_source"
            )
        if path is not None:
            path = str(self._allowed(path))
        if fmt is None:
            first = data.split("\n", 1)[0] if data is not None else _first_line(Path(str(path)))
            fmt = detect_format(first, path)
        op_id = f"bf_{secrets.token_hex(10)}"
        async with self.db.write() as conn:
            await conn.execute(
                backfill_operations.insert().values(
                    id=op_id,
                    tenant_id=tenant_id,
                    status="pending",
                    source_type=fmt,
                    source_path=path,
                    source_data=data,
                    dry_run=dry_run,
                    actor=actor,
                    errors=[],
                    created_at=self.clock(),
                    **dict.fromkeys(
                        ("total", "accepted", "duplicate", "held", "rejected", "conflict"), 0
                    ),
                )
            )
        task = asyncio.create_task(self.run(op_id), name=f"backfill-{op_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await self.get(tenant_id, op_id)

    async def wait(self) -> None:
        """Wait for running operations (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def get(self, tenant_id: str, op_id: str) -> dict[str, Any]:
        """An operation's status and counts."""
        async with self.db.read() as conn:
            row = (
                (
                    await conn.execute(
                        select(backfill_operations).where(
                            backfill_operations.c.tenant_id == tenant_id,
                            backfill_operations.c.id == op_id,
                        )
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound(f"no backfill {op_id}", code="backfill_not_found", param="id")
        return {
            "id": row["id"],
            "status": row["status"],
            "dryRun": row["dry_run"],
            "sourceType": row["source_type"],
            "sourcePath": row["source_path"],
            "counts": {
                k: row[k]
                for k in ("total", "accepted", "duplicate", "held", "rejected", "conflict")
            },
            "errors": row["errors"],
            "error": row["error"],
            "createdAt": row["created_at"],
            "startedAt": row["started_at"],
            "finishedAt": row["finished_at"],
        }

    async def run(self, op_id: str) -> None:
        """Stream the operation's source through ingest (or the dry-run checks)."""
        async with self.db.write() as conn:
            row = (
                (
                    await conn.execute(
                        select(backfill_operations).where(backfill_operations.c.id == op_id)
                    )
                )
                .mappings()
                .one()
            )
            await self._update(conn, op_id, status="running", started_at=self.clock())
        progress = Progress()
        try:
            if row["source_path"]:
                # Read line by line between awaits: one small blocking read per line.
                with open(row["source_path"], encoding="utf-8", newline="") as handle:  # noqa: ASYNC230
                    await self.stream(
                        row["tenant_id"],
                        handle,
                        row["source_type"],
                        row["dry_run"],
                        progress,
                        op_id,
                    )
            else:
                text = io.StringIO(row["source_data"], newline="")
                await self.stream(
                    row["tenant_id"], text, row["source_type"], row["dry_run"], progress, op_id
                )
        except Exception as exc:
            async with self.db.write() as conn:
                await self._update(
                    conn,
                    op_id,
                    status="failed",
                    error=repr(exc)[:1000],
                    finished_at=self.clock(),
                    **progress.as_dict(),
                )
            return
        async with self.db.write() as conn:
            await self._update(
                conn, op_id, status="completed", finished_at=self.clock(), **progress.as_dict()
            )

    async def stream(
        self,
        tenant_id: str,
        lines: Iterable[str],
        fmt: str,
        dry_run: bool,
        progress: Progress,
        op_id: str | None = None,
        on_batch: Callable[[Progress], None] | None = None,
    ) -> Progress:
        """Ingest (or check) every event of ``lines``, one batch at a time."""
        async for batch in batches(read_lines(lines, fmt), BATCH):
            numbers = [n for n, _ in batch]
            items = [e for _, e in batch]
            if dry_run:
                await self._dry_batch(tenant_id, numbers, items, progress)
            else:
                wire = [e for e in items if not isinstance(e, Rejection)]
                wire_lines = [n for n, e in batch if not isinstance(e, Rejection)]
                for n, e in batch:
                    if isinstance(e, Rejection):
                        progress.add("rejected", n, e.message)
                report = await self.ingest.ingest(tenant_id, wire, default_source=Source.IMPORT)
                for result in report.results:
                    progress.add(
                        result.status, wire_lines[result.index], result.message or result.reason
                    )
            if op_id is not None:
                async with self.db.write() as conn:
                    await self._update(conn, op_id, **progress.as_dict())
            if on_batch is not None:
                on_batch(progress)
        return progress

    async def _dry_batch(
        self, tenant_id: str, numbers: list[int], items: list[object], progress: Progress
    ) -> None:
        now = self.clock()
        parsed = [
            e
            if isinstance(e, Rejection)
            else parse_event(
                e, tenant_id=tenant_id, now=now, limits=self.limits, default_source=Source.IMPORT
            )
            for e in items
        ]
        keys = [p.idempotency_key for p in parsed if not isinstance(p, Rejection)]
        async with self.db.read() as conn:
            found = {
                r[0]
                for r in await conn.execute(
                    select(events.c.idempotency_key).where(
                        events.c.tenant_id == tenant_id, events.c.idempotency_key.in_(keys)
                    )
                )
            }
        seen: set[str] = set()
        for number, item in zip(numbers, parsed, strict=True):
            if isinstance(item, Rejection):
                progress.add("rejected", number, item.message)
            elif item.idempotency_key in found or item.idempotency_key in seen:
                progress.add("duplicate", number)
            else:
                seen.add(item.idempotency_key)
                progress.add("accepted", number)

    @staticmethod
    async def _update(conn: Any, op_id: str, **values: Any) -> None:
        await conn.execute(
            update(backfill_operations).where(backfill_operations.c.id == op_id).values(**values)
        )

    def _allowed(self, path: str) -> Path:
        """The file ``path`` names, if it lies inside the configured backfill folder.

        An API key must not turn the server into a reader of arbitrary files, so paths are refused
        unless the operator named a folder (STRIPEMETER_BACKFILL_DIR), and only files inside it count.
        """
        if self.files_dir is None:
            raise InvalidInput(
                "reading files on the server is off; set STRIPEMETER_BACKFILL_DIR, or send the body",
                code="paths_disabled",
                param="path",
            )
        try:
            root = self.files_dir.resolve()
            target = (root / path).resolve()
            inside = target.is_relative_to(root) and target.is_file()
        except (OSError, ValueError):
            inside = False
        if not inside:
            raise InvalidInput(
                f"no readable file at {path!r} inside the backfill folder",
                code="file_not_found",
                param="path",
            )
        return target


def _first_line(path: Path) -> str:
    with path.open(encoding="utf-8") as handle:
        return handle.readline()
