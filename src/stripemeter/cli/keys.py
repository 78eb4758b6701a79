"""``stripemeter keys``: create, list, revoke and rotate API keys (talks to the database directly)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import typer
from rich.table import Table

from stripemeter.cli.common import (
    DatabaseOption,
    JsonOption,
    console,
    load_settings,
    print_json,
    run_with_db,
)
from stripemeter.services.keys import KeyService

app = typer.Typer(help="Manage API keys.", no_args_is_help=True)


@app.command()
def create(
    tenant: str = typer.Option(..., "--tenant", help="Tenant id (created if it does not exist)."),
    scopes: str = typer.Option("admin", "--scopes", help="Comma-separated scopes."),
    name: str = typer.Option("", "--name", help="A label to recognise the key by."),
    expires_in_days: int | None = typer.Option(None, "--expires-in-days", min=1),
    as_json: bool = JsonOption,
    database_url: str | None = DatabaseOption,
) -> None:
    """Mint a key; the secret is printed once and never stored."""
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    issued = run_with_db(
        load_settings(database_url),
        lambda db: KeyService(db).create(tenant, scopes, name=name, expires_at=expires),
    )
    if as_json:
        print_json(
            {
                "key": issued.key,
                "id": issued.id,
                "tenant": issued.tenant_id,
                "scopes": sorted(s.value for s in issued.scopes),
            }
        )
        return
    console.print(
        f"Created key [bold]{issued.id}[/bold] for tenant [bold]{issued.tenant_id}[/bold]"
    )
    console.print("Store it now; it is not shown again:")
    console.print(issued.key, markup=False, highlight=False)


@app.command("list")
def list_keys(
    tenant: str | None = typer.Option(None, "--tenant"),
    as_json: bool = JsonOption,
    database_url: str | None = DatabaseOption,
) -> None:
    """List keys (never their secrets)."""
    rows = run_with_db(load_settings(database_url), lambda db: KeyService(db).list(tenant))
    if as_json:
        print_json(rows)
        return
    table = Table("id", "tenant", "prefix", "scopes", "created", "expires", "revoked")
    for row in rows:
        table.add_row(
            *(
                str(row[k] or "") if not isinstance(row[k], list) else ",".join(row[k])  # type: ignore[arg-type]
                for k in ("id", "tenant", "prefix", "scopes", "createdAt", "expiresAt", "revokedAt")
            )
        )
    console.print(table)


@app.command()
def revoke(key_id: str, database_url: str | None = DatabaseOption) -> None:
    """Revoke a key at once."""
    run_with_db(load_settings(database_url), lambda db: KeyService(db).revoke(key_id))
    console.print(f"Revoked {key_id}")


@app.command()
def rotate(
    key_id: str,
    grace_hours: int = typer.Option(
        24, "--grace-hours", min=0, help="How long the old key keeps working."
    ),
    as_json: bool = JsonOption,
    database_url: str | None = DatabaseOption,
) -> None:
    """Issue a replacement key with the same scopes; the old one expires after the grace period."""
    issued = run_with_db(
        load_settings(database_url),
        lambda db: KeyService(db).rotate(key_id, grace=timedelta(hours=grace_hours)),
    )
    if as_json:
        print_json(
            {"key": issued.key, "id": issued.id, "tenant": issued.tenant_id, "rotatedFrom": key_id}
        )
        return
    console.print(f"New key {issued.id} (old key {key_id} expires in {grace_hours} h):")
    console.print(issued.key, markup=False, highlight=False)
