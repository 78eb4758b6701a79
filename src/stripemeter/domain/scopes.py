"""API key scopes, and the check of one scope against a key's grants."""

from __future__ import annotations

import enum


class Scope(enum.StrEnum):
    """What a key may do. ``admin`` grants everything."""

    EVENTS_WRITE = "events:write"
    EVENTS_READ = "events:read"
    USAGE_READ = "usage:read"
    MAPPINGS_WRITE = "mappings:write"
    RECONCILIATION_WRITE = "reconciliation:write"
    ADJUSTMENTS_APPROVE = "adjustments:approve"
    ADMIN = "admin"


def parse_scopes(text: str) -> frozenset[Scope]:
    """Parse ``a,b`` into scopes; raises ValueError naming an unknown one."""
    scopes = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            scopes.add(Scope(part))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ValueError(f"unknown scope {part!r}; known scopes: {known}") from None
    if not scopes:
        raise ValueError("at least one scope is required")
    return frozenset(scopes)


def allows(granted: frozenset[Scope], needed: Scope) -> bool:
    """Whether a key with ``granted`` may act under ``needed``."""
    return Scope.ADMIN in granted or needed in granted
