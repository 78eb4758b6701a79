"""First start of an empty database: a default tenant and one admin key."""

from __future__ import annotations

from stripemeter.domain.scopes import Scope
from stripemeter.services.keys import KeyService
from stripemeter.store import tenants
from stripemeter.store.database import Database


async def bootstrap(db: Database, tenant_id: str) -> str | None:
    """Create the default tenant and an admin key when no tenant exists; returns the key once."""
    async with db.read() as conn:
        if await tenants.count_tenants(conn):
            return None
    issued = await KeyService(db).create(
        tenant_id, frozenset({Scope.ADMIN}), name="bootstrap admin", actor="bootstrap"
    )
    return issued.key
