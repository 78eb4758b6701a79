"""Fixtures of the CLI tests: a real server with a FAKE Stripe over HTTP, and the real CLI.

Every command runs as a ``stripemeter`` subprocess, as a user would run it. Starting the CLI costs
a second or more (imports), so independent commands run side by side (``Cli.run_many``).
"""

from __future__ import annotations

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

from stripemeter.stripe.fake.server import build_server
from tests.acceptance.support import (
    CLI_TIMEOUT,
    STRIPEMETER,
    ServerProcess,
    create_key,
    environment,
    free_port,
    migrate,
)

TENANT = "cli"
STRIPE_KEY = "sk_test_cli_tests"  # a test-mode key of the fake Stripe
PARALLEL = 4  # CLI processes at once


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

    def json(self, *args: str, stdin: str | None = None, code: int = 0) -> Any:
        """Run with ``--json``, check the exit status, and parse stdout."""
        done = self.run(*args, "--json", stdin=stdin)
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
    migrate(database_url, cwd)
    key = create_key(database_url, cwd, TENANT)
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
