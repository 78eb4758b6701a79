"""``stripemeter simulate run|validate|report PATH``: invoice scenarios from files.

PATH is a scenario file (``.yaml``, ``.yml`` or ``.json``) or a folder, whose ``*.sim.yaml``,
``*.sim.yml`` and ``*.sim.json`` files are taken in name order. ``run`` and ``report`` feed each
scenario's events through the real ingest path in a scratch database (a temporary SQLite file
unless ``--database-url`` is given) and exit with status 1 when any expectation is not met.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from stripemeter.cli.common import JsonOption, console, err_console, print_json
from stripemeter.domain.errors import StripeMeterError
from stripemeter.domain.pricing import currency
from stripemeter.services.scenarios import Scenario, load_file
from stripemeter.services.simulations import ScenarioOutcome, ScenarioRunner
from stripemeter.store.database import Database
from stripemeter.store.migrate import upgrade

app = typer.Typer(help="Run invoice scenarios (YAML or JSON).", no_args_is_help=True)
PATTERNS = ("*.sim.yaml", "*.sim.yml", "*.sim.json")
PathArgument = typer.Argument(..., exists=True, help="A scenario file or a folder of *.sim.yaml.")
ScratchDatabaseOption = typer.Option(
    None,
    "--database-url",
    envvar="STRIPEMETER_SIMULATE_DATABASE_URL",
    help="A migrated database for the scratch tenants (default: a temporary SQLite file).",
)


@dataclass
class Loaded:
    """A scenario file, read or failed."""

    path: Path
    scenario: Scenario | None
    error: str | None


def discover(path: Path) -> list[Path]:
    """The scenario files PATH names."""
    if path.is_file():
        return [path]
    return sorted({p for pattern in PATTERNS for p in path.glob(pattern)})


def load_all(path: Path) -> list[Loaded]:
    """Read every scenario, keeping errors per file."""
    loaded = []
    for file in discover(path):
        try:
            loaded.append(Loaded(file, load_file(file), None))
        except StripeMeterError as exc:
            param = f" ({exc.param})" if exc.param else ""
            loaded.append(Loaded(file, None, f"{exc.message}{param}"))
    return loaded


def run_all(loaded: list[Loaded], database_url: str | None) -> list[tuple[Loaded, Any]]:
    """Run every readable scenario; an outcome or an error message per file."""

    async def runner(url: str) -> list[tuple[Loaded, Any]]:
        db = Database.from_url(url)
        try:
            scenario_runner = ScenarioRunner(db)
            results: list[tuple[Loaded, Any]] = []
            for item in loaded:
                if item.scenario is None:
                    results.append((item, item.error))
                    continue
                try:
                    results.append((item, await scenario_runner.run(item.scenario)))
                except StripeMeterError as exc:
                    results.append((item, exc.message))
            return results
        finally:
            await db.dispose()

    if database_url is not None:
        return asyncio.run(runner(database_url))
    with tempfile.TemporaryDirectory(prefix="stripemeter-sim-") as scratch:
        url = f"sqlite:///{Path(scratch) / 'simulate.db'}"
        upgrade(url)
        return asyncio.run(runner(url))


def _money(amount: str, exponent: int) -> str:
    """An amount with the currency's decimal places (``40`` USD is ``40.00``)."""
    return str(Decimal(amount).quantize(Decimal(1).scaleb(-exponent)))


def _status(value: Any) -> str:
    if isinstance(value, str):
        return "[red]error[/red]"
    return "[green]pass[/green]" if value.passed else "[red]FAIL[/red]"


def _json(results: list[tuple[Loaded, Any]]) -> dict[str, Any]:
    items = []
    for item, value in results:
        entry: dict[str, Any] = {"file": str(item.path)}
        if isinstance(value, ScenarioOutcome):
            entry |= {"scenario": value.result["scenario"], "passed": value.passed,
                      "result": value.result}  # fmt: skip
        else:
            entry |= {"scenario": item.path.name, "passed": False, "error": value}
        items.append(entry)
    passed = sum(1 for i in items if i["passed"])
    return {"summary": {"total": len(items), "passed": passed, "failed": len(items) - passed},
            "results": items}  # fmt: skip


def _finish(results: list[tuple[Loaded, Any]]) -> None:
    if not results:
        err_console.print("[red]error:[/red] no scenario files found")
        raise typer.Exit(1)
    if any(not isinstance(v, ScenarioOutcome) or not v.passed for _, v in results):
        raise typer.Exit(1)


@app.command()
def validate(path: Path = PathArgument, as_json: bool = JsonOption) -> None:
    """Check scenario files without running them."""
    loaded = load_all(path)
    if as_json:
        print_json(
            {"results": [{"file": str(i.path), "valid": i.error is None, "error": i.error}
                         for i in loaded]}
        )  # fmt: skip
    else:
        table = Table("file", "scenario", "status", "problem")
        for item in loaded:
            name = item.scenario.name if item.scenario else ""
            status = "[green]valid[/green]" if item.error is None else "[red]invalid[/red]"
            table.add_row(str(item.path), name, status, item.error or "")
        console.print(table)
    if not loaded or any(i.error for i in loaded):
        raise typer.Exit(1)


@app.command()
def run(
    path: Path = PathArgument,
    as_json: bool = JsonOption,
    database_url: str | None = ScratchDatabaseOption,
) -> None:
    """Run scenarios and print one row per customer invoice; exit 1 on any mismatch."""
    results = run_all(load_all(path), database_url)
    if as_json:
        print_json(_json(results))
        _finish(results)
        return
    table = Table("scenario", "customer", "total", "expected", "events", "status")
    for item, value in results:
        if not isinstance(value, ScenarioOutcome):
            table.add_row(item.path.name, "", "", "", "", _status(value))
            table.add_row("", f"[red]{value}[/red]", "", "", "", "")
            continue
        ingest = value.result["ingest"]["totals"]
        events = ", ".join(f"{count} {status}" for status, count in ingest.items() if count)
        exponent = currency(value.result["currency"]).exponent
        mark = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: "-"}
        for index, invoice in enumerate(value.result["invoices"]):
            expected = invoice["expectedTotal"]
            table.add_row(
                value.result["scenario"] if index == 0 else "",
                invoice["customerRef"],
                f"{_money(invoice['invoice']['total'], exponent)} {value.result['currency'].upper()}",
                "" if expected is None else _money(expected, exponent),
                events if index == 0 else "",
                mark[invoice["passed"]],
            )
        for diff in value.result["ingest"]["differences"]:
            table.add_row(value.result["scenario"], "", "", "", "", f"[red]{diff['field']}: "
                          f"expected {diff['expected']}, got {diff['actual']}[/red]")  # fmt: skip
    console.print(table)
    _print_failures(results)
    _finish(results)


@app.command()
def report(
    path: Path = PathArgument,
    as_json: bool = JsonOption,
    database_url: str | None = ScratchDatabaseOption,
) -> None:
    """Run scenarios and print every invoice line, tier and what-if difference."""
    results = run_all(load_all(path), database_url)
    if as_json:
        print_json(_json(results))
        _finish(results)
        return
    for item, value in results:
        if not isinstance(value, ScenarioOutcome):
            console.print(f"[bold]{item.path.name}[/bold]: [red]{value}[/red]")
            continue
        result = value.result
        console.print(f"[bold]{result['scenario']}[/bold] {_status(value)}  "
                      f"events: {result['ingest']['totals']}")  # fmt: skip
        for invoice in result["invoices"]:
            view = invoice["invoice"]
            table = Table("metric", "quantity", "tiers", "amount", title=invoice["customerRef"])
            for line in view["lineItems"]:
                tiers = "; ".join(
                    f"t{t['tier']}: {t['quantity']} x {t['unitAmountDecimal']} + {t['flatAmount']}"
                    for t in line["tiers"]
                )
                exponent = currency(view["currency"]).exponent
                table.add_row(line["metric"], line["quantity"], tiers,
                              _money(line["subtotal"], exponent))  # fmt: skip
            for label in ("subtotal", "credits", "tax", "total"):
                table.add_row(
                    label, "", "", _money(view[label], currency(view["currency"]).exponent)
                )
            console.print(table)
        if result["whatIf"]:
            table = Table("customer", "current", "new", "difference", title="what if")
            exponent = currency(result["currency"]).exponent
            for entry in result["whatIf"]:
                table.add_row(
                    entry["customerRef"],
                    *(
                        _money(entry[k], exponent)
                        for k in ("currentTotal", "newTotal", "difference")
                    ),
                )
            console.print(table)
    _print_failures(results)
    _finish(results)


def _print_failures(results: list[tuple[Loaded, Any]]) -> None:
    for _item, value in results:
        if not isinstance(value, ScenarioOutcome) or value.passed:
            continue
        for invoice in value.result["invoices"]:
            for diff in invoice["differences"]:
                err_console.print(
                    f"{value.result['scenario']} / {invoice['customerRef']}: {diff['field']}: "
                    f"expected {diff['expected']}, got {diff['actual']}",
                    markup=False,
                )
