"""The ``stripemeter`` command tree: each command is a thin shell over a service."""

from __future__ import annotations

import typer

from stripemeter.cli import backfill, fake_stripe, keys, replay, server, simulate, worker
from stripemeter.cli import customers as customers_command
from stripemeter.cli import doctor as doctor_command
from stripemeter.cli import events as events_command
from stripemeter.cli import ingest as ingest_command
from stripemeter.cli import mappings as mappings_command
from stripemeter.cli import reconcile as reconcile_command
from stripemeter.cli import usage as usage_command

app = typer.Typer(
    name="stripemeter",
    help="Usage metering for Stripe billing.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
server.register(app)
app.add_typer(keys.app, name="keys")
replay.register(app)
app.add_typer(simulate.app, name="simulate")
worker.register(app)
fake_stripe.register(app)
backfill.register(app)
ingest_command.register(app)
usage_command.register(app)
app.add_typer(events_command.app, name="events")
app.add_typer(mappings_command.app, name="mappings")
app.add_typer(customers_command.app, name="customers")
doctor_command.register(app)
reconcile_command.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
