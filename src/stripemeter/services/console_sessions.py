"""Admin console sign-in: an API key opens a session; the browser only ever holds a session token.

The cookie is ``<token>.<signature>``: 256 random bits, signed with a key derived from the app
secret so forged cookies are refused without a database read. The database stores only the token's
SHA-256, the key id, and the session's CSRF token. Every request re-reads the key, so revoking or
expiring a key ends its console sessions at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from stripemeter.domain.scopes import Scope, parse_scopes
from stripemeter.services.app_secret import AppSecret
from stripemeter.services.keys import KeyService, Principal
from stripemeter.store import ui_sessions
from stripemeter.store.database import Database

SESSION_LIFETIME = timedelta(hours=12)
KEY_PURPOSE = "console-session"
MAX_COOKIE_LENGTH = 200


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in operator: the key's principal, its name, and the CSRF token of its forms."""

    principal: Principal
    key_name: str
    key_prefix: str
    csrf_token: str
    expires_at: datetime

    def allows(self, scope: Scope) -> bool:
        """Whether the session's key grants ``scope`` (admin grants all)."""
        return Scope.ADMIN in self.principal.scopes or scope in self.principal.scopes


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class ConsoleSessions:
    """Opens, resolves and closes console sessions."""

    def __init__(
        self,
        db: Database,
        secret: AppSecret,
        keys: KeyService,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lifetime: timedelta = SESSION_LIFETIME,
    ) -> None:
        self._db = db
        self._secret = secret
        self._keys = keys
        self._clock = clock
        self._lifetime = lifetime

    async def _sign(self, token: str) -> str:
        key = await self._secret.key(KEY_PURPOSE)
        return _b64(hmac.new(key, token.encode(), hashlib.sha256).digest())

    async def sign_in(self, presented_key: str) -> tuple[str, ConsoleSession]:
        """Check the key (Unauthorized if it is not valid) and open a session: (cookie, session)."""
        principal = await self._keys.authenticate(presented_key.strip())
        now = self._clock()
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        expires_at = now + self._lifetime
        async with self._db.write() as conn:
            await ui_sessions.delete_expired(conn, now)
            await ui_sessions.insert_session(
                conn,
                token_hash=_hash(token),
                tenant_id=principal.tenant_id,
                key_id=principal.key_id,
                csrf_token=csrf,
                now=now,
                expires_at=expires_at,
            )
        session = await self._load(token)
        assert session is not None
        return f"{token}.{await self._sign(token)}", session

    async def resolve(self, cookie: str | None) -> ConsoleSession | None:
        """The live session behind a cookie, or None (unsigned, unknown, expired, key revoked)."""
        if not cookie or len(cookie) > MAX_COOKIE_LENGTH:
            return None
        token, _, signature = cookie.partition(".")
        if not token or not signature:
            return None
        if not hmac.compare_digest(signature.encode(), (await self._sign(token)).encode()):
            return None
        return await self._load(token)

    async def _load(self, token: str) -> ConsoleSession | None:
        async with self._db.read() as conn:
            row = await ui_sessions.get_session(conn, _hash(token))
        now = self._clock()
        if row is None or row["expires_at"] <= now or row["key_tenant_id"] != row["tenant_id"]:
            return None
        for limit in (row["key_revoked_at"], row["key_expires_at"]):
            if limit is not None and limit <= now:
                return None
        principal = Principal(row["tenant_id"], row["key_id"], parse_scopes(row["scopes"]))
        return ConsoleSession(
            principal, row["key_name"], row["key_prefix"], row["csrf_token"], row["expires_at"]
        )

    async def sign_out(self, cookie: str | None) -> None:
        """Close the session behind a cookie, if any."""
        if not cookie:
            return
        token, _, _ = cookie.partition(".")
        if token:
            async with self._db.write() as conn:
                await ui_sessions.delete_session(conn, _hash(token))
