"""The process's signing secret: ``STRIPEMETER_SECRET_KEY``, or one generated once per database.

Every process on one database must sign and verify alike (a console session opened on one API
process is used on another; a widget token minted by one is checked by all). Without the setting,
the first process to need a secret inserts a random one and every process reads the stored row.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from stripemeter.domain.widget_tokens import derive_key
from stripemeter.store import app_secrets
from stripemeter.store.database import Database

SECRET_NAME = "signing_secret_v1"  # noqa: S105 - the row name, not the secret
GENERATED_SECRET_BYTES = 48


class AppSecret:
    """Hands out purpose-bound keys derived from the one secret."""

    def __init__(
        self,
        db: Database,
        configured: str | None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db = db
        self._configured = configured
        self._clock = clock
        self._secret: bytes | None = None
        self._lock = asyncio.Lock()

    @property
    def from_settings(self) -> bool:
        """Whether STRIPEMETER_SECRET_KEY set the secret (rather than the database)."""
        return self._configured is not None

    async def secret(self) -> bytes:
        """The raw secret, loaded (or created) once per process."""
        if self._secret is not None:
            return self._secret
        async with self._lock:
            if self._secret is None:
                if self._configured is not None:
                    self._secret = self._configured.encode()
                else:
                    candidate = secrets.token_urlsafe(GENERATED_SECRET_BYTES)
                    async with self._db.write() as conn:
                        value = await app_secrets.get_or_create(
                            conn, SECRET_NAME, candidate, self._clock()
                        )
                    self._secret = value.encode()
        return self._secret

    async def key(self, purpose: str) -> bytes:
        """A key for one purpose (``widget``, ``console-session``), derived from the secret."""
        return derive_key(await self.secret(), purpose)
