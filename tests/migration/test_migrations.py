"""Migrations build exactly the schema the code declares, on both databases, and can be undone."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select

from stripemeter.store.migrate import alembic_config, upgrade
from stripemeter.store.tables import counters, metadata
from tests.conftest import _pg_admin, pg_url


@pytest.fixture
def empty_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database (no migrations applied) on the current backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"sm_mig_{secrets.token_hex(6)}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sync_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def test_upgrading_an_empty_database_matches_the_declared_tables(empty_database: str) -> None:
    """After `upgrade head` autogenerate finds no difference between the database and tables.py."""
    upgrade(empty_database)
    engine = create_engine(sync_url(empty_database))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_every_migration_can_be_undone_and_redone(empty_database: str) -> None:
    """Downgrading to base leaves no table behind, and upgrading again works."""
    upgrade(empty_database)
    command.downgrade(alembic_config(empty_database), "base")
    engine = create_engine(sync_url(empty_database))
    try:
        leftover = set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()
    assert leftover == set()
    upgrade(empty_database)


def test_counters_stored_before_0009_get_the_minute_they_changed(empty_database: str) -> None:
    """Upgrading fills ``updated_minute`` (the pusher's change feed) from each ``updated_at``."""
    upgrade(empty_database, "0008")
    changed = datetime(2026, 11, 28, 3, 41, 17, 250000, tzinfo=UTC)
    engine = create_engine(sync_url(empty_database))
    try:
        with engine.begin() as conn:
            conn.execute(
                counters.insert().values(
                    tenant_id="t",
                    metric="api_calls",
                    customer_ref="cus_1",
                    period_start=datetime(2026, 11, 1, tzinfo=UTC),
                    period_end=datetime(2026, 12, 1, tzinfo=UTC),
                    sum=Decimal(3),
                    count=1,
                    updated_at=changed,
                )
            )
        upgrade(empty_database)
        with engine.connect() as conn:
            row = conn.execute(select(counters.c.updated_at, counters.c.updated_minute)).one()
    finally:
        engine.dispose()
    assert row.updated_at == changed
    assert row.updated_minute == datetime(2026, 11, 28, 3, 41, tzinfo=UTC)
