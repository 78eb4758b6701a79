"""The ``stripemeter`` command tree: each command is a thin shell over a service."""

from __future__ import annotations

import typer

from stripemeter.cli import keys, replay, server

app = typer.Typer(
    name="stripemeter",
    help="Usage metering for Stripe billing.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
server.register(app)
app.add_typer(keys.app, name="keys")
replay.register(app)
app.add_typer(__import__("stripemeter.cli.simulate", fromlist=["_"]).app, name="simulate")
__import__("stripemeter.cli.worker", fromlist=["_"]).register(app)
__import__("stripemeter.cli.fake_stripe", fromlist=["_"]).register(app)


def main() -> None:
    """Console-script entry point."""
    app()
