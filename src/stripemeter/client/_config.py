"""Configuration values of the SDK: timeouts, retries, defaults and the "use the client's" sentinel."""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import httpx

DEFAULT_TIMEOUT: Final = 10.0  # seconds, for each of connect, read, write and pool
DEFAULT_BATCH_SIZE: Final = 100  # events per ingest request
MAX_BATCH_SIZE: Final = 1000  # the server's default limit per request
DEFAULT_FLUSH_INTERVAL: Final = 2.0  # seconds between background flushes
DEFAULT_CLOSE_BUDGET: Final = 5.0  # seconds of retry waits allowed when flushing at close/exit
DEFAULT_ATTEMPTS: Final = 5  # tries per request, the first one included
DEFAULT_BACKOFF: Final = 0.5  # seconds before the first retry
DEFAULT_MAX_BACKOFF: Final = 30.0  # seconds, cap of one exponential wait
DEFAULT_MAX_RETRY_AFTER: Final = 60.0  # seconds; a longer Retry-After gives up instead of waiting
SPOOL_DIR_ENV: Final = "STRIPEMETER_SPOOL_DIR"


class UseClientDefault:
    """The type of ``USE_CLIENT_DEFAULT``: "not given here, use the client's setting".

    It is distinct from ``None``, which means "disabled" (no timeout, no retries).
    """

    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


USE_CLIENT_DEFAULT: Final = UseClientDefault()


@dataclass(frozen=True, slots=True)
class Timeout:
    """Timeouts of one request in seconds; ``None`` disables one.

    ``Timeout(5.0)`` sets all four; ``Timeout(5.0, connect=1.0)`` overrides one of them.
    """

    timeout: float | None = DEFAULT_TIMEOUT
    connect: float | UseClientDefault | None = USE_CLIENT_DEFAULT
    read: float | UseClientDefault | None = USE_CLIENT_DEFAULT
    write: float | UseClientDefault | None = USE_CLIENT_DEFAULT
    pool: float | UseClientDefault | None = USE_CLIENT_DEFAULT

    def to_httpx(self) -> httpx.Timeout:
        """The same timeouts as an ``httpx.Timeout``."""

        def pick(value: float | UseClientDefault | None) -> float | None:
            return self.timeout if isinstance(value, UseClientDefault) else value

        return httpx.Timeout(
            connect=pick(self.connect),
            read=pick(self.read),
            write=pick(self.write),
            pool=pick(self.pool),
        )


@dataclass(frozen=True, slots=True)
class Retry:
    """When and how long to retry a request that failed for a reason that may pass.

    Retried: network errors and timeouts, 429 (waiting ``Retry-After`` when the server sends it) and
    5xx answers. Never retried: other 4xx answers, which say the request itself is wrong.

    Attributes:
        attempts: tries in all, the first one included (1 = no retry).
        backoff: seconds before the first retry; each further wait doubles, up to ``max_backoff``.
        max_backoff: cap of one wait, in seconds.
        jitter: fraction of each wait that is random (0 = none, 1 = "full jitter").
        max_retry_after: a ``Retry-After`` longer than this (seconds) ends the retries.
    """

    attempts: int = DEFAULT_ATTEMPTS
    backoff: float = DEFAULT_BACKOFF
    max_backoff: float = DEFAULT_MAX_BACKOFF
    jitter: float = 0.5
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    retry_statuses: frozenset[int] = field(
        default_factory=lambda: frozenset({429, 500, 502, 503, 504})
    )

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.backoff < 0 or self.max_backoff < 0 or self.max_retry_after < 0:
            raise ValueError("backoff, max_backoff and max_retry_after must not be negative")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")


NO_RETRY: Final = Retry(attempts=1)


def default_cache_dir() -> Path:
    """The user's cache directory for StripeMeter (XDG on Linux, the platform's elsewhere)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "stripemeter" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "stripemeter"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base_dir = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base_dir / "stripemeter"


def default_spool_dir() -> Path:
    """Where spools live unless told otherwise: ``$STRIPEMETER_SPOOL_DIR`` or ``<cache>/spool``."""
    configured = os.environ.get(SPOOL_DIR_ENV)
    if configured:
        return Path(configured)
    return default_cache_dir() / "spool"


def spool_name(api_url: str, namespace: str) -> str:
    """The file name of the spool shared by every client of one server URL and tenant."""
    normalized = str(httpx.URL(api_url)).rstrip("/")
    digest = hashlib.sha256(f"{normalized}\n{namespace}".encode()).hexdigest()[:24]
    return f"events-{digest}.sqlite3"
