"""Reading a tenant's audit log, a page at a time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stripemeter.domain.errors import InvalidInput
from stripemeter.services.read_params import decode_cursor, encode_cursor
from stripemeter.store import audit
from stripemeter.store.database import Database

_CURSOR_KIND = "audit"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One recorded change: who, what, to which row, and when."""

    id: int
    actor: str
    action: str
    target_type: str
    target_id: str
    details: Any
    request_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Entries newest first, and the cursor of the next page (None on the last)."""

    items: list[AuditEntry]
    next_cursor: str | None


class AuditLogService:
    """Read access to the append-only audit log."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def page(self, tenant_id: str, *, cursor: str | None, limit: int) -> AuditPage:
        """A page of the tenant's entries, newest first, after ``cursor``."""
        before_id = None
        if cursor is not None:
            before_id = decode_cursor(cursor, _CURSOR_KIND)
            if (
                not isinstance(before_id, int)
                or isinstance(before_id, bool)
                or not 0 < before_id < 2**63
            ):
                raise InvalidInput("cursor is malformed", code="invalid_cursor", param="cursor")
        async with self._db.read() as conn:
            rows = await audit.list_entries(conn, tenant_id, before_id=before_id, limit=limit + 1)
        items = [
            AuditEntry(
                id=int(row["id"]),
                actor=row["actor"],
                action=row["action"],
                target_type=row["target_type"],
                target_id=row["target_id"],
                details=row["details"],
                request_id=row["request_id"],
                created_at=row["created_at"],
            )
            for row in rows[:limit]
        ]
        more = len(rows) > limit and bool(items)
        return AuditPage(items, encode_cursor(_CURSOR_KIND, items[-1].id) if more else None)
