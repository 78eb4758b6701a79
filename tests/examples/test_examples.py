"""The runnable examples in ``examples/``: each runs against a real server and prints its story."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.acceptance.support import ServerProcess
from tests.cli.conftest import prepare_database

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Run every example once against ``stripemeter serve`` (SQLite, embedded FAKE Stripe)."""
    cwd = tmp_path_factory.mktemp("examples")
    database_url = f"sqlite:///{cwd / 'examples.db'}"
    key = prepare_database(database_url, "examples")
    server = ServerProcess(database_url, cwd)
    try:
        server.wait_ready()
        env = {
            **{
                k: v for k, v in os.environ.items() if not k.startswith(("STRIPEMETER_", "STRIPE_"))
            },
            "STRIPEMETER_URL": server.url,
            "STRIPEMETER_API_KEY": key,
            "XDG_CACHE_HOME": str(cwd / "cache"),  # the SDK's spool, never the developer's
        }

        def run(name: str) -> str:
            done = subprocess.run(
                [sys.executable, str(EXAMPLES / f"{name}.py")],
                env=env, capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT, check=False,
            )  # fmt: skip
            assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
            return done.stdout

        names = ["api_calls", "seats_last", "tokens_tiered"]
        with ThreadPoolExecutor(len(names)) as pool:
            yield dict(zip(names, pool.map(run, names), strict=True))
    finally:
        server.stop()


def test_api_calls_counts_a_retried_event_once(outputs: dict[str, str]) -> None:
    """Three tracked events sent twice: accepted, then duplicates; usage is 40, not 80."""
    out = outputs["api_calls"]
    assert "tracked 3 events, 40 API calls" in out
    assert "first delivery: 3 accepted, 0 duplicates" in out
    assert "retry of the same events: 0 accepted, 3 duplicates" in out
    assert "usage this period: api_calls = 40 (3 events, counted once)" in out


def test_seats_bill_the_last_count_by_event_time(outputs: dict[str, str]) -> None:
    """Seat counts go up and down; the billed value is the last one, even after a late report."""
    out = outputs["seats_last"]
    assert "metric seats: aggregation last" in out
    billed = re.findall(r"billed: (\S+) seats \(last\); max (\S+), (\d+) reports", out)
    assert billed == [("7", "12", "5"), ("7", "20", "6")]


def test_tokens_are_priced_by_graduated_tiers(outputs: dict[str, str]) -> None:
    """4.5M tokens: 1M at $2/M plus 3.5M at $1.50/M is $7.25, with a run-rate projection."""
    out = outputs["tokens_tiered"]
    assert "tracked 3 requests, 4,500,000 tokens" in out
    assert "tier 1 (up to 1,000,000): 1,000,000 tokens x 0.0002 cents" in out
    assert "tier 2 (up to 10,000,000): 3,500,000 tokens x 0.00015 cents" in out
    assert "tokens so far: 4,500,000 -> 7.25 USD" in out
    assert "invoice so far: 7.25 USD" in out
    assert "projected at period end (run rate):" in out
