"""``stripemeter fake-stripe``: serve the FAKE Stripe over HTTP (tests, demos, local development)."""

from __future__ import annotations

import typer

from stripemeter.cli.common import err_console


def register(app: typer.Typer) -> None:
    """Add ``fake-stripe`` to the root command."""
    app.command("fake-stripe")(fake_stripe)


def fake_stripe(
    port: int = typer.Option(12111, "--port", envvar="STRIPEMETER_FAKE_STRIPE_PORT"),
    host: str = typer.Option("127.0.0.1", "--host"),
    state_file: str | None = typer.Option(
        None, "--state-file", help="Keep state in this JSON file."
    ),
    webhook_url: str | None = typer.Option(
        None, "--webhook-url", help="POST signed webhooks here."
    ),
    webhook_secret: str | None = typer.Option(
        None, "--webhook-secret", envvar="STRIPE_WEBHOOK_SECRET", help="Signing secret (whsec_…)."
    ),
) -> None:
    """Run a stateful FAKE Stripe; point STRIPE_API_BASE at it. Nothing it holds is real."""
    from stripemeter.stripe.fake.server import build_server

    err_console.print(f"FAKE Stripe (not Stripe) on http://{host}:{port}")
    secret = webhook_secret.split(",")[0].strip() if webhook_secret else None
    build_server(host, port, state_file, webhook_url=webhook_url, webhook_secret=secret).run()
