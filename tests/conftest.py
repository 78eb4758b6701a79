"""Fixtures shared by every test: databases on both backends, the app, keys."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from asgi_lifespan import LifespanManager

from stripemeter.api.app import Services, create_app
from stripemeter.config import Settings
from stripemeter.services.keys import IssuedKey
from stripemeter.store.migrate import upgrade
from stripemeter.store.tables import metadata

PG_ADMIN_URL = os.environ.get(
    "STRIPEMETER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the developer's settings or Stripe keys."""
    for name in list(os.environ):
        owned = name.startswith(("STRIPEMETER_", "STRIPE_")) or name == "DATABASE_URL"
        if owned and name != "STRIPEMETER_TEST_PG":
            monkeypatch.delenv(name)
    monkeypatch.chdir(Path(__file__).parent)  # no stray .env is picked up


def pg_url(dbname: str) -> str:
    """A URL for another database on the test server."""
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{dbname}"


def _pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.encode())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One migrated PostgreSQL database for the session; each test starts from empty tables.

    Creating a database per test costs about half a second; truncating every table costs a few
    milliseconds and gives the same isolation for tests that run one at a time.
    """
    name = f"sm_test_{os.getpid()}_{secrets.token_hex(3)}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        upgrade(pg_url(name))
        yield name
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# One query naming the tables that hold rows (``EXISTS`` stops at the first row of each). The
# names come from our own metadata, never from input.
_TABLES_WITH_ROWS = " UNION ALL ".join(
    f"SELECT '{table.name}' WHERE EXISTS (SELECT FROM \"{table.name}\")"  # noqa: S608
    for table in metadata.sorted_tables
)
# Sequences that have handed out a value (``last_value`` is NULL until the first ``nextval``).
_USED_SEQUENCES = (
    "SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences"
    " WHERE last_value IS NOT NULL"
)


def _truncate_all(dbname: str) -> None:
    """Empty every table and restart every sequence, as ``TRUNCATE … RESTART IDENTITY`` of all would.

    Truncating a table gives it and its indexes new files: about 0.3 s for all of them, on every
    PostgreSQL test. Most tests write to a few tables, so only those are truncated, and only the
    sequences that handed out a value are restarted (a table emptied by a DELETE keeps its rows'
    sequence advanced, so sequences are checked apart from tables).
    """
    with psycopg.connect(pg_url(dbname), autocommit=True) as conn:
        conn.execute(b"SET lock_timeout = '10s'")
        names = [f'"{name}"' for (name,) in conn.execute(_TABLES_WITH_ROWS.encode())]
        if names:
            conn.execute(f"TRUNCATE {', '.join(names)} CASCADE".encode())
        for (sequence,) in conn.execute(_USED_SEQUENCES.encode()).fetchall():
            conn.execute(f"ALTER SEQUENCE {sequence} RESTART".encode())


def make_database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database URL on ``backend`` whose tables are empty."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "stripemeter.db"
        shutil.copyfile(template, target)
        yield f"sqlite:///{target}"
        return
    name: str = request.getfixturevalue("pg_database")
    _truncate_all(name)
    yield pg_url(name)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each test using it runs once on SQLite and once on PostgreSQL."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh migrated database on the current backend."""
    yield from make_database(backend, request, tmp_path)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for the test database (backfill files may come from the test's tmp_path)."""
    return Settings(
        database_url=database_url,
        log_format="console",
        log_level="WARNING",
        backfill_dir=str(tmp_path),
    )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    """The services, not started (for tests below the HTTP layer)."""
    built = Services.build(settings)
    yield built
    await built.db.dispose()


@pytest.fixture
async def app_services(settings: Settings) -> AsyncIterator[Services]:
    """Services owned by a running app (lifespan entered)."""
    built = Services.build(settings)
    app = create_app(settings, services=built)
    async with LifespanManager(app):
        built.app = app  # type: ignore[attr-defined]
        yield built


@pytest.fixture
async def client(app_services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client bound to the running app, without credentials."""
    app = app_services.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://stripemeter.test") as http:
        yield http


async def issue(services: Services, tenant: str, scopes: str = "admin") -> IssuedKey:
    """Mint a key for a tenant."""
    return await services.keys.create(tenant, scopes)


@pytest.fixture
async def admin_key(app_services: Services) -> IssuedKey:
    """An admin key of tenant ``acme``."""
    return await issue(app_services, "acme")


@pytest.fixture
async def api(client: httpx.AsyncClient, admin_key: IssuedKey) -> httpx.AsyncClient:
    """The client authenticated as acme's admin key."""
    client.headers["Authorization"] = f"Bearer {admin_key.key}"
    return client
