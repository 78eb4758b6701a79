"""Engines and transactions: one ``Database`` per process, for SQLite (WAL) or PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

SQLITE_BUSY_TIMEOUT_MS = 10_000
# SQLSTATEs a new attempt of the same transaction can clear: deadlock and serialization failure
# (on either path), a unique key another transaction committed first; and on the driver path a
# connection lost (class 08) or shut down by the server (57P01-57P03: a restart).
RACE_SQLSTATES = frozenset({"40P01", "40001"})
_RACES = RACE_SQLSTATES | {"23505"}
_LOST = frozenset({"57P01", "57P02", "57P03"})


class TryAgain(Exception):
    """A driver transaction lost a race or its connection; running it again is safe."""


def async_url(url: str) -> str:
    """Map a user-facing URL (``sqlite:///x.db``, ``postgresql://…``) onto our async drivers."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")


def create_engine(url: str, *, pool_size: int = 10, pooled: bool = True) -> AsyncEngine:
    """An async engine with the pragmas and pool each backend needs (``pooled=False``: one-off work)."""
    target = async_url(url)
    if not pooled:
        engine = create_async_engine(target, poolclass=NullPool)
        if target.startswith("sqlite"):
            _configure_sqlite(engine)
        return engine
    if target.startswith("sqlite"):
        engine = create_async_engine(target, poolclass=NullPool if ":memory:" in target else None)
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        target, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours (and IMMEDIATE for writers).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before we acknowledge it, power loss included.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writer takes the lock up front: upgrading a read lock later can fail with SQLITE_BUSY.
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """The process's connection to its database, handing out read and write transactions."""

    def __init__(self, engine: AsyncEngine, *, pool_size: int = 10) -> None:
        self.engine = engine
        self.pool_size = pool_size
        self.dialect = engine.dialect.name
        self._driver_pool: asyncpg.Pool | None = None
        self._driver_pool_lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 10) -> Database:
        """Build from a user-facing URL."""
        return cls(create_engine(url, pool_size=pool_size), pool_size=pool_size)

    @property
    def is_postgres(self) -> bool:
        """Whether row locks, advisory locks and SKIP LOCKED are available."""
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A transaction for reads (committed, so a mistaken write would not vanish silently)."""
        async with self.engine.connect() as conn, conn.begin():
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction; on SQLite it holds the write lock from its first statement."""
        async with self.engine.connect() as conn:
            if not self.is_postgres:
                conn = await conn.execution_options(sqlite_immediate=True)
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def driver_write(self) -> AsyncIterator[asyncpg.Connection]:
        """PostgreSQL only: a write transaction on a bare asyncpg connection (the ingest groups).

        Through SQLAlchemy (checkout with its liveness ping, BEGIN, adapted statements, COMMIT) a
        group of 16 single-event requests cost about 1.4 ms of CPU, here about 0.9 ms, most of it
        the statements themselves (docs/decisions.md, Group commit). Lost races and lost
        connections raise ``TryAgain``.
        """
        pool = self._driver_pool or await self._open_driver_pool()
        try:
            async with pool.acquire() as driver, driver.transaction():
                yield driver
        except asyncpg.PostgresError as exc:
            state = exc.sqlstate or ""
            if state in _RACES or state in _LOST or state.startswith("08"):
                raise TryAgain(str(exc)) from exc
            raise
        except (asyncpg.InterfaceError, asyncpg.InternalClientError, OSError) as exc:
            # A connection that died while idle in the pool (a database restart): no ping
            # before use, one failed attempt instead, and the pool replaces the connection.
            # (asyncpg reports a server-side termination noticed at BEGIN as an internal error.)
            raise TryAgain(str(exc)) from exc

    async def _open_driver_pool(self) -> asyncpg.Pool:
        async with self._driver_pool_lock:
            if self._driver_pool is None:
                url = self.engine.url.set(drivername="postgresql")
                self._driver_pool = await asyncpg.create_pool(
                    url.render_as_string(hide_password=False),
                    min_size=0,
                    max_size=self.pool_size,
                )
            return self._driver_pool

    async def ping(self) -> None:
        """Run a trivial query; raises if the database is unreachable."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Close every pooled connection."""
        if self._driver_pool is not None:
            await self._driver_pool.close()
            self._driver_pool = None
        await self.engine.dispose()
