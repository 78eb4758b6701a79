"""``stripemeter customers``: customer mappings (customerRef → Stripe customer) on a server."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from stripemeter.cli.common import JsonOption, console, print_json
from stripemeter.cli.remote import ApiKeyOption, UrlOption, cell, connect, fail, wire
from stripemeter.client import Resource

app = typer.Typer(help="Map your customers to Stripe customers.", no_args_is_help=True)
IMPORT_CHUNK = 1000  # mappings per import request, the server's limit (each is all or nothing)
COLUMNS = ("customerRef", "stripeCustomerId", "shadowStripeCustomerId", "updatedAt")
IMPORT_FIELDS = {"customerref": "customerRef", "customer_ref": "customerRef",
                 "stripecustomerid": "stripeCustomerId", "stripe_customer_id": "stripeCustomerId",
                 "shadowstripecustomerid": "shadowStripeCustomerId",
                 "shadow_stripe_customer_id": "shadowStripeCustomerId"}  # fmt: skip


@app.command("list")
def list_customers(
    url: str = UrlOption, api_key: str | None = ApiKeyOption, as_json: bool = JsonOption
) -> None:
    """Every customer mapping of the key's tenant, by customerRef."""
    with connect(url, api_key) as client:
        found = list(client.list_customers(page_size=1000))
    if as_json:
        print_json([wire(c) for c in found])
        return
    table = Table(*COLUMNS)
    for customer in found:
        table.add_row(*(cell(customer.get(name)) for name in COLUMNS))
    console.print(table)
    console.print(f"{len(found)} customers")


@app.command("get")
def get_customer(
    customer_ref: str = typer.Argument(..., help="Your customer's reference."),
    url: str = UrlOption,
    api_key: str | None = ApiKeyOption,
    as_json: bool = JsonOption,
) -> None:
    """One customer mapping."""
    with connect(url, api_key) as client:
        found = client.get_customer(customer_ref)
    show_one(found, as_json)


@app.command("set")
def set_customer(
    customer_ref: str = typer.Argument(..., help="Your customer's reference."),
    stripe_customer_id: str = typer.Argument(..., help="cus_… in Stripe."),
    shadow: str | None = typer.Option(None, "--shadow", help="Its test-mode customer (cus_…)."),
    url: str = UrlOption,
    api_key: str | None = ApiKeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Create or replace a customer mapping."""
    with connect(url, api_key) as client:
        saved = client.set_customer(
            customer_ref, stripe_customer_id, shadow_stripe_customer_id=shadow
        )
    show_one(saved, as_json)


@app.command("delete")
def delete_customer(
    customer_ref: str = typer.Argument(..., help="Your customer's reference."),
    url: str = UrlOption,
    api_key: str | None = ApiKeyOption,
) -> None:
    """Remove a customer mapping; its usage is reported as unmapped from now on."""
    with connect(url, api_key) as client:
        client.delete_customer(customer_ref)
    console.print(f"Deleted {customer_ref}")


@app.command("import")
def import_customers(
    source: str = typer.Argument(..., metavar="FILE|-", help="CSV with a header, JSON or JSONL."),
    url: str = UrlOption,
    api_key: str | None = ApiKeyOption,
    as_json: bool = JsonOption,
) -> None:
    """Create or replace many mappings (customerRef, stripeCustomerId[, shadowStripeCustomerId]).

    Sent 1,000 at a time; each chunk is saved whole or not at all.
    """
    items = read_customers(source)
    imported = 0
    with connect(url, api_key) as client:
        for start in range(0, len(items), IMPORT_CHUNK):
            answer = client.import_customers(items[start : start + IMPORT_CHUNK])
            imported += int(answer.get("imported", 0))
    if as_json:
        print_json({"imported": imported})
    else:
        console.print(f"Imported {imported} customer mappings")


def read_customers(source: str) -> list[dict[str, Any]]:
    """Mappings from CSV (with a header), a JSON array / ``{"customers": [...]}``, or JSONL."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {source}: {exc}")
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            items = json.loads(text)
        elif stripped.startswith("{"):
            body = json.loads(text) if "\n" not in stripped.strip() else None
            if isinstance(body, dict) and "customers" in body:
                items = body["customers"]
            elif body is not None:
                items = [body]
            else:
                items = _json_lines_or_document(text)
        else:
            items = _csv(text)
    except ValueError as exc:
        fail(f"{source}: {exc}")
    if not isinstance(items, list) or not items:
        fail(f"{source}: no customer mappings found")
    return [_normalise(item) for item in items]


def _json_lines_or_document(text: str) -> Any:
    try:
        body = json.loads(text)
    except ValueError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return body.get("customers") if isinstance(body, dict) else body


def _csv(text: str) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    return [{k: v.strip() for k, v in row.items() if k and v and v.strip()} for row in rows]


def _normalise(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        fail(f"every customer mapping must be an object, got {item!r}")
    return {IMPORT_FIELDS.get(str(k).strip().lower(), str(k)): v for k, v in item.items()}


def show_one(customer: Resource, as_json: bool) -> None:
    """One mapping as a line or JSON."""
    if as_json:
        print_json(wire(customer))
        return
    shadow = customer.get("shadowStripeCustomerId")
    extra = f" (test mode: {shadow})" if shadow else ""
    console.print(
        f"{customer.get('customerRef')} → {customer.get('stripeCustomerId')}{extra}",
        highlight=False,
    )
