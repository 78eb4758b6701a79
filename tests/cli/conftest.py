"""Fixtures of the CLI tests: a real server with a FAKE Stripe over HTTP, and the real CLI.

Every command runs as a ``stripemeter`` subprocess, as a user would run it. Starting the CLI costs
a second or more (imports), so independent commands run side by side (``Cli.run_many``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from stripemeter.cli.main import app
from stripemeter.services.keys import KeyService
from stripemeter.store.database import Database
from stripemeter.store.migrate import upgrade
from stripemeter.stripe.fake.server import build_server
from tests.acceptance.support import CLI_TIMEOUT, STRIPEMETER, ServerProcess, environment, free_port

TENANT = "cli"
STRIPE_KEY = "sk_test_cli_tests"  # a test-mode key of the fake Stripe
PARALLEL = 8  # CLI processes at once (each spends most of its life importing)


@dataclass
class Cli:
    """Runs ``stripemeter`` against the test server (URL and key in the environment)."""

    url: str
    key: str
    database_url: str
    cwd: Path
    stripe_url: str

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of a client command: server URL, key, wide output, a private cache."""
        values = {
            "STRIPEMETER_URL": self.url,
            "STRIPEMETER_API_KEY": self.key,
            "COLUMNS": "200",
            "XDG_CACHE_HOME": str(self.cwd / "cache"),
        }
        return environment(self.database_url, {**values, **(extra or {})})

    def run(
        self, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``stripemeter ARGS``, whatever its exit status."""
        return subprocess.run(
            [STRIPEMETER, *args],
            cwd=self.cwd,
            env=self.env(env),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            check=False,
        )

    def run_many(
        self, calls: Sequence[tuple[Sequence[str], Mapping[str, Any]]]
    ) -> list[subprocess.CompletedProcess[str]]:
        """Several independent commands at once; results in the order given."""
        with ThreadPoolExecutor(PARALLEL) as pool:
            futures = [pool.submit(self.run, *args, **options) for args, options in calls]
            return [future.result() for future in futures]

    def invoke(
        self, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``stripemeter ARGS`` inside this process, for more cases of a command run as a process.

        Starting the CLI as a process costs a second or more of imports; the command code is the
        same, so only the first case of each command pays for it.
        """
        result: Result = CliRunner().invoke(
            app, list(args), input=stdin, env=self.env(env), catch_exceptions=False
        )
        return subprocess.CompletedProcess(
            ["stripemeter", *args], result.exit_code, result.stdout, result.stderr
        )

    def json(
        self, *args: str, stdin: str | None = None, code: int = 0, in_process: bool = False
    ) -> Any:
        """Run with ``--json``, check the exit status, and parse stdout."""
        run = self.invoke if in_process else self.run
        done = run(*args, "--json", stdin=stdin)
        assert done.returncode == code, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        return json.loads(done.stdout)


def stripe_form(url: str, path: str, **params: str) -> dict[str, Any]:
    """POST form parameters to the FAKE Stripe with the test key."""
    response = httpx.post(
        url + path, data=params, headers={"Authorization": f"Bearer {STRIPE_KEY}"}, timeout=10
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def prepare_database(database_url: str, tenant: str) -> str:
    """Migrate the database and mint an admin key of ``tenant`` (in this process: no CLI start)."""
    upgrade(database_url)

    async def mint() -> str:
        db = Database.from_url(database_url)
        try:
            return (await KeyService(db).create(tenant, "admin", name="cli tests")).key
        finally:
            await db.dispose()

    return asyncio.run(mint())


@pytest.fixture(scope="session")
def stripe_url() -> Iterator[str]:
    """A FAKE Stripe on a free port, in a thread of the test process."""
    port = free_port()
    server = build_server("127.0.0.1", port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "fake Stripe did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def cli(tmp_path_factory: pytest.TempPathFactory, stripe_url: str) -> Iterator[Cli]:
    """``stripemeter serve`` on SQLite, its Stripe the fake; an admin key of tenant ``cli``."""
    cwd = tmp_path_factory.mktemp("cli")
    database_url = f"sqlite:///{cwd / 'cli.db'}"
    key = prepare_database(database_url, TENANT)
    stripe = {
        "STRIPE_API_BASE": stripe_url,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        "STRIPEMETER_PUSH_ENABLED": "false",
    }
    server = ServerProcess(database_url, cwd, env=stripe)
    try:
        server.wait_ready()
        yield Cli(server.url, key, database_url, cwd, stripe_url)
    finally:
        server.stop()
