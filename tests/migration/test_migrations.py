"""Migrations build exactly the schema the code declares, on both databases, and can be undone."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from stripemeter.store.migrate import alembic_config, upgrade
from stripemeter.store.tables import metadata
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
