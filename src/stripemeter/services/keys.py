"""API keys: minted once, stored as a hash, checked in constant time, cached briefly per process."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from stripemeter.domain.errors import InvalidInput, NotFound, Unauthorized
from stripemeter.domain.scopes import Scope, parse_scopes
from stripemeter.services.ttl_cache import TtlCache
from stripemeter.store import audit, tenants
from stripemeter.store.database import Database

# (secret hash, principal, expires at, revoked at) of a key, by prefix.
_StoredKey = tuple[str, "Principal", datetime | None, datetime | None]
KEY_CACHE_TTL = 5.0  # seconds a revocation in another process may take to be seen here
DEFAULT_ROTATION_GRACE = timedelta(hours=24)
_KEY_FORMAT = re.compile(r"^(sm_[a-z0-9]{12})_([A-Za-z0-9_-]{43})$")
TENANT_ID_FORMAT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key of one tenant with some scopes."""

    tenant_id: str
    key_id: str
    scopes: frozenset[Scope]


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A freshly minted key: the only moment the secret exists outside the caller's hands."""

    key: str
    id: str
    tenant_id: str
    scopes: frozenset[Scope]
    expires_at: datetime | None


def hash_key(key: str) -> str:
    """SHA-256 of the full key; keys carry 256 random bits, so a slow hash adds nothing."""
    return hashlib.sha256(key.encode()).hexdigest()


def validate_tenant_id(tenant_id: str) -> str:
    """Tenant ids are 1-64 characters of letters, digits, ``_``, ``.`` and ``-``."""
    if not TENANT_ID_FORMAT.match(tenant_id):
        raise InvalidInput(
            "tenant ids are 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
            param="tenant",
        )
    return tenant_id


class KeyService:
    """Creates, lists, revokes, rotates and authenticates API keys."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        cache_ttl: float = KEY_CACHE_TTL,
    ) -> None:
        self._db = db
        self._clock = clock
        self._cache: TtlCache[str, _StoredKey] = TtlCache(cache_ttl)

    async def create(
        self,
        tenant_id: str,
        scopes: str | frozenset[Scope],
        *,
        name: str = "",
        expires_at: datetime | None = None,
        actor: str = "cli",
        rotated_from: str | None = None,
    ) -> IssuedKey:
        """Mint a key for a tenant (created if new) and store only its hash."""
        validate_tenant_id(tenant_id)
        granted = parse_scopes(scopes) if isinstance(scopes, str) else scopes
        now = self._clock()
        prefix = "sm_" + "".join(
            secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12)
        )
        key = f"{prefix}_{secrets.token_urlsafe(32)}"
        key_id = "key_" + secrets.token_hex(8)
        async with self._db.write() as conn:
            await tenants.ensure_tenant(conn, tenant_id, tenant_id, now)
            await tenants.insert_key(
                conn,
                {
                    "id": key_id,
                    "tenant_id": tenant_id,
                    "name": name or prefix,
                    "prefix": prefix,
                    "secret_hash": hash_key(key),
                    "scopes": ",".join(sorted(s.value for s in granted)),
                    "created_at": now,
                    "expires_at": expires_at,
                    "revoked_at": None,
                    "rotated_from": rotated_from,
                },
            )
            await audit.record(
                conn,
                tenant_id=tenant_id,
                actor=actor,
                action="key.created",
                target_type="api_key",
                target_id=key_id,
                details={"scopes": sorted(s.value for s in granted), "name": name},
                request_id=None,
                now=now,
            )
        return IssuedKey(key, key_id, tenant_id, granted, expires_at)

    async def authenticate(self, presented: str) -> Principal:
        """The principal behind a presented key, or Unauthorized (never saying which check failed)."""
        match = _KEY_FORMAT.match(presented)
        if match is None:
            raise Unauthorized("invalid API key", code="invalid_api_key")
        prefix = match.group(1)
        secret_hash, principal, expires_at, revoked_at = await self._cache.get(
            prefix, lambda: self._stored(prefix)
        )
        if not hmac.compare_digest(secret_hash, hash_key(presented)):
            raise Unauthorized("invalid API key", code="invalid_api_key")
        now = self._clock()
        if revoked_at is not None and revoked_at <= now:
            raise Unauthorized("this API key was revoked", code="api_key_revoked")
        if expires_at is not None and expires_at <= now:
            raise Unauthorized("this API key has expired", code="api_key_expired")
        return principal

    async def _stored(self, prefix: str) -> _StoredKey:
        async with self._db.read() as conn:
            row = await tenants.key_by_prefix(conn, prefix)
        if row is None:
            raise Unauthorized("invalid API key", code="invalid_api_key")
        principal = Principal(row["tenant_id"], row["id"], parse_scopes(row["scopes"]))
        return row["secret_hash"], principal, row["expires_at"], row["revoked_at"]

    async def list(self, tenant_id: str | None) -> list[dict[str, object]]:
        """Key records without secrets."""
        async with self._db.read() as conn:
            rows = await tenants.list_keys(conn, tenant_id)
        return [
            {
                "id": r["id"],
                "tenant": r["tenant_id"],
                "name": r["name"],
                "prefix": r["prefix"],
                "scopes": r["scopes"].split(","),
                "createdAt": r["created_at"],
                "expiresAt": r["expires_at"],
                "revokedAt": r["revoked_at"],
            }
            for r in rows
        ]

    async def revoke(
        self, key_id: str, *, tenant_id: str | None = None, actor: str = "cli"
    ) -> None:
        """Revoke a key now (within a tenant when given)."""
        now = self._clock()
        async with self._db.write() as conn:
            row = await tenants.get_key(conn, key_id, tenant_id)
            if row is None:
                raise NotFound(f"no API key {key_id!r}", param="id")
            await tenants.set_key_times(conn, key_id, revoked_at=now)
            await audit.record(
                conn,
                tenant_id=row["tenant_id"],
                actor=actor,
                action="key.revoked",
                target_type="api_key",
                target_id=key_id,
                details={},
                request_id=None,
                now=now,
            )
        self._cache.invalidate(row["prefix"])

    async def rotate(
        self,
        key_id: str,
        *,
        tenant_id: str | None = None,
        grace: timedelta = DEFAULT_ROTATION_GRACE,
        actor: str = "cli",
    ) -> IssuedKey:
        """Issue a replacement with the same scopes; the old key keeps working for ``grace``."""
        now = self._clock()
        async with self._db.write() as conn:
            row = await tenants.get_key(conn, key_id, tenant_id)
            if row is None:
                raise NotFound(f"no API key {key_id!r}", param="id")
            if row["revoked_at"] is not None:
                raise InvalidInput("a revoked key cannot be rotated", param="id")
            old_expiry = row["expires_at"]
            new_expiry = now + grace if old_expiry is None else min(old_expiry, now + grace)
            await tenants.set_key_times(conn, key_id, expires_at=new_expiry)
        self._cache.invalidate(row["prefix"])
        return await self.create(
            row["tenant_id"],
            parse_scopes(row["scopes"]),
            name=row["name"],
            expires_at=old_expiry,
            actor=actor,
            rotated_from=key_id,
        )
