"""What every command shares: settings, running async services, printing results."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from stripemeter.api.json import encode
from stripemeter.config import Settings
from stripemeter.domain.errors import StripeMeterError
from stripemeter.store.database import Database

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)

DatabaseOption = typer.Option(
    None,
    "--database-url",
    envvar="DATABASE_URL",
    help="Database URL (default: sqlite:///./stripemeter.db).",
)
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def load_settings(database_url: str | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, with command-line overrides."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if database_url:
        values["database_url"] = database_url
    return Settings(**values)


def run_with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work`` against the configured database, turning our errors into exit code 1."""

    async def runner() -> T:
        db = Database.from_url(settings.database_url)
        try:
            return await work(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(runner())
    except StripeMeterError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


def print_json(value: Any) -> None:
    """Write one JSON document to stdout."""
    sys.stdout.write(json.dumps(json.loads(encode(value)), indent=2) + "\n")
