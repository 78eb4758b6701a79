"""``stripemeter mappings``: price mappings (metric → Stripe meter or subscription item) on a server."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from stripemeter.cli.common import JsonOption, console, print_json
from stripemeter.cli.remote import ApiKeyOption, UrlOption, cell, connect, fail, wire
from stripemeter.client import Resource

app = typer.Typer(help="Manage price mappings (metric → Stripe).", no_args_is_help=True)

AggregationOption = typer.Option(None, "--aggregation", help="sum, max, last or count.")
MeterEventOption = typer.Option(None, "--meter-event-name", help="Billing Meter event name.")
MeterIdOption = typer.Option(None, "--meter-id", help="Billing Meter id (mtr_…).")
PriceOption = typer.Option(None, "--price-id", help="Stripe price (price_…).")
ItemOption = typer.Option(None, "--subscription-item-id", help="Legacy usage records (si_…).")
CurrencyOption = typer.Option(None, "--currency", help="Three-letter ISO code.")
DriverOption = typer.Option(None, "--driver", help="meters, meter_stream or legacy (inferred).")
AccountOption = typer.Option(None, "--stripe-account", help="A connected account (acct_…).")
ShadowOption = typer.Option(None, "--shadow/--no-shadow", help="Also push to test mode.")
COLUMNS = ("id", "metric", "aggregation", "driver", "meterEventName", "subscriptionItemId",
           "priceId", "currency", "active", "shadow")  # fmt: skip


@app.command("list")
def list_mappings(
    metric: str | None = typer.Option(None, "--metric", help="Only this metric."),
    active: bool | None = typer.Option(None, "--active/--inactive", help="Only (in)active ones."),
    url: str = UrlOption,
    api_key: str | None = ApiKeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Every price mapping of the key's tenant."""
    with connect(url, api_key) as client:
        found = client.list_mappings(active=active, metric=metric)
    show(found, as_json)


@app.command("get")
def get_mapping(
    mapping_id: str = typer.Argument(..., help="map_…"),
    url: str = UrlOption,
    api_key: str | None = ApiKeyOption,
    as_json: bool = JsonOption,
) -> None:
    """One price mapping."""
    with connect(url, api_key) as client:
        found = client.get_mapping(mapping_id)
    show_one(found, as_json)


@app.command("create")
def create_mapping(
    metric: str = typer.Option(..., "--metric", help="The metric to push."),
    aggregation: str = typer.Option(..., "--aggregation", help="sum, max, last or count."),
    meter_event_name: str | None = MeterEventOption,
    meter_id: str | None = MeterIdOption,
    price_id: str | None = PriceOption,
    subscription_item_id: str | None = ItemOption,
    currency: str | None = CurrencyOption,
    driver: str | None = DriverOption,
    stripe_account: str | None = AccountOption,
    shadow: bool | None = ShadowOption,
    url: str = UrlOption,
    api_key: str | None = ApiKeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Map a metric to its Stripe target; the server checks the target exists in Stripe."""
    fields = collect(locals(), exclude={"metric", "url", "api_key", "as_json"})
    with connect(url, api_key) as client:
        created = client.create_mapping(metric=metric, **fields)
    show_one(created, as_json, verb="created")


@app.command("update")
def update_mapping(
    mapping_id: str = typer.Argument(..., help="map_…"),
    aggregation: str | None = AggregationOption,
    meter_event_name: str | None = MeterEventOption,
    meter_id: str | None = MeterIdOption,
    price_id: str | None = PriceOption,
    subscription_item_id: str | None = ItemOption,
    currency: str | None = CurrencyOption,
    driver: str | None = DriverOption,
    stripe_account: str | None = AccountOption,
    active: bool | None = typer.Option(None, "--active/--inactive", help="Push or pause."),
    shadow: bool | None = ShadowOption,
    url: str = UrlOption,
    api_key: str | None = ApiKeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Change some fields of a mapping (the metric cannot change)."""
    fields = collect(locals(), exclude={"mapping_id", "url", "api_key", "as_json"})
    if not fields:
        fail("nothing to change: give at least one option (see --help)")
    with connect(url, api_key) as client:
        updated = client.update_mapping(mapping_id, **fields)
    show_one(updated, as_json, verb="updated")


@app.command("delete")
def delete_mapping(
    mapping_id: str = typer.Argument(..., help="map_…"),
    url: str = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """Delete a mapping; its push history stays."""
    with connect(url, api_key) as client:
        client.delete_mapping(mapping_id)
    console.print(f"Deleted {mapping_id}")


def collect(arguments: dict[str, Any], *, exclude: set[str]) -> dict[str, Any]:
    """The options that were given, by their SDK (snake_case) names."""
    return {k: v for k, v in arguments.items() if k not in exclude and v is not None}


def show(found: list[Resource], as_json: bool) -> None:
    """Mappings as a table or JSON."""
    if as_json:
        print_json([wire(m) for m in found])
        return
    table = Table(*COLUMNS)
    for mapping in found:
        table.add_row(*(cell(mapping.get(name)) for name in COLUMNS))
    console.print(table)


def show_one(mapping: Resource, as_json: bool, *, verb: str | None = None) -> None:
    """One mapping, field by field, or JSON."""
    if as_json:
        print_json(wire(mapping))
        return
    if verb:
        console.print(f"Mapping {mapping.id} {verb}")
    table = Table("field", "value", show_header=False)
    for name, value in mapping.raw.items():
        table.add_row(name, cell(value))
    console.print(table)
