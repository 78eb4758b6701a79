"""The console's security tests run in-process on SQLite (the session logic is backend-neutral)."""

from __future__ import annotations

import pytest


@pytest.fixture
def backend() -> str:
    """SQLite only: these tests are about HTTP behaviour, not the database."""
    return "sqlite"
