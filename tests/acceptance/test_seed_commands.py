"""Every command and call in the original product's documentation works against our server as written.

The commands are read from ../shared/reference/seed-stripemeter.txt at test time (the file users arrive
with) and run with one change: an API key header. The server listens on localhost:3000, as written.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.acceptance.support import create_key, environment, migrate, running_server

REPO = Path(__file__).resolve().parents[2]
SEED = REPO.parent / "shared" / "reference" / "seed-stripemeter.txt"
PORT = 3000
TENANTS = ("default", "your-tenant-id", "X")


@dataclass(frozen=True)
class Command:
    """One shell command from the seed, and the tenant whose key it runs with."""

    text: str
    tenant: str


def seed_text() -> str:
    assert SEED.is_file(), f"the seed documentation is missing at {SEED}"
    return SEED.read_text()


def curl_commands(text: str) -> list[str]:
    """Every ``curl`` command, joined across backslash continuations and multi-line quotes."""
    commands: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if not line.startswith("curl "):
            i += 1
            continue
        parts = [lines[i].rstrip()]
        while parts[-1].endswith("\\") or parts_open("\n".join(parts)):
            i += 1
            parts.append(lines[i].rstrip())
        commands.append("\n".join(parts).strip())
        i += 1
    return commands


def parts_open(text: str) -> bool:
    return text.count("'") % 2 == 1


def bullet_requests(text: str) -> list[str]:
    """``• Readiness: GET /health/ready`` style lines, as curl commands."""
    paths = re.findall(r"^\s*•\s*[\w ]+:\s*GET\s+(\S+)\s*$", text, flags=re.MULTILINE)
    return [f"curl 'http://localhost:{PORT}{path}'" for path in paths]


def tenant_of(command: str) -> str:
    if "your-tenant-id" in command:
        return "your-tenant-id"
    if re.search(r'tenantId=X\b|"tenantId":\s*"X"', command):
        return "X"
    return "default"


def with_key(command: str) -> str:
    """The command with an API key header added right after ``curl``."""
    return command.replace("curl ", 'curl -H "Authorization: Bearer $STRIPEMETER_API_KEY" ', 1)


def seed_commands() -> list[Command]:
    text = seed_text()
    return [Command(c, tenant_of(c)) for c in [*curl_commands(text), *bullet_requests(text)]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """``stripemeter serve`` on port 3000 with a key for each tenant the seed names."""
    cwd = tmp_path_factory.mktemp("seed")
    database_url = f"sqlite:///{cwd / 'stripemeter.db'}"
    migrate(database_url, cwd)
    keys = {tenant: create_key(database_url, cwd, tenant) for tenant in TENANTS}
    with running_server(database_url, cwd, port=PORT) as url:
        yield url, keys


def run_shell(command: str, key: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = environment("unused", {"STRIPEMETER_API_KEY": key})
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_seed_is_read_whole() -> None:
    """The parser finds every request the seed documents (so a new one cannot slip by untested)."""
    texts = [c.text for c in seed_commands()]
    assert sum("/v1/events/ingest" in t for t in texts) == 1
    assert sum("/v1/usage/projection" in t for t in texts) == 1
    assert sum("/v1/replay" in t for t in texts) == 1
    assert sum("/health/ready" in t for t in texts) == 1
    assert sum("/v1/events?tenantId=X&limit=10" in t for t in texts) == 1
    assert sum(t.startswith("curl http://localhost:3000/metrics") for t in texts) == 1


@pytest.mark.parametrize("command", seed_commands(), ids=lambda c: c.text.split("\n")[0][:60])
def test_each_documented_curl_command_works(
    server: tuple[str, dict[str, str]], command: Command
) -> None:
    """The command exits 0 and the server answers without an error envelope."""
    _, keys = server
    done = run_shell(with_key(command.text), keys[command.tenant])
    assert done.returncode == 0, done.stderr
    output = done.stdout.strip()
    assert output, f"no output from {command.text}"
    if output.startswith("{"):
        body = json.loads(output)
        assert "error" not in body, body
    else:
        assert "stripemeter_" in output  # Prometheus text


def test_the_idempotency_walkthrough_counts_one_event_once(
    server: tuple[str, dict[str, str]],
) -> None:
    """The walkthrough's send.sh sends one event twice: accepted, then duplicate."""
    _, keys = server
    text = seed_text()
    send = next(line.strip() for line in text.splitlines() if "examples/api-calls/send.sh" in line)
    grep = next(line.strip() for line in text.splitlines() if "| grep ingest" in line)
    done = run_shell(send, keys["default"])
    assert done.returncode == 0, done.stderr
    answers = [
        json.loads(line.split(": ", 1)[1])
        for line in done.stdout.splitlines()
        if line.startswith("attempt")
    ]
    assert [a["results"][0]["status"] for a in answers] == ["accepted", "duplicate"]
    metrics = run_shell(with_key(grep), keys["default"])
    assert metrics.returncode == 0
    assert 'stripemeter_ingest_events_total{status="duplicate"}' in metrics.stdout


def test_the_documented_ingest_lands_in_the_documented_tenant(
    server: tuple[str, dict[str, str]],
) -> None:
    """The README's ingest (tenant your-tenant-id, cus_ABC123, 100 api_calls) is counted there."""
    url, keys = server
    response = httpx.get(
        f"{url}/v1/events",
        params={"customerRef": "cus_ABC123", "metric": "api_calls"},
        headers={"Authorization": f"Bearer {keys['your-tenant-id']}"},
    )
    assert response.status_code == 200
    quantities = [
        e["quantity"]
        for e in response.json()["events"]
        if e["ts"].startswith("2025-01-16T14:30:00")
    ]
    assert quantities == [100]


def test_the_python_sdk_snippet_runs_as_written(
    server: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    """The seed's Python SDK lines, plus an api_key, track an event the server counts."""
    url, keys = server
    text = seed_text()
    block = text[text.index("Python SDK") : text.index("Stripe Billing Driver")]
    code = "\n".join(line for line in block.splitlines()[1:] if line.strip())
    code = code.replace("StripeMeterClient(\n", "StripeMeterClient(\n    api_key=API_KEY,\n", 1)
    script = tmp_path / "snippet.py"
    script.write_text(f"API_KEY = {keys['your-tenant-id']!r}\n{code}\nclient.close()\n")
    env = {**os.environ, "STRIPEMETER_SPOOL_DIR": str(tmp_path / "spool")}
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    usage = httpx.get(
        f"{url}/v1/usage/current",
        params={"customerRef": "cus_ABC123"},
        headers={"Authorization": f"Bearer {keys['your-tenant-id']}"},
    ).json()
    assert any(m["metric"] == "api_calls" for m in usage["metrics"])


def test_shell_quoting_of_the_parsed_commands_is_intact() -> None:
    """Every parsed command is a complete shell command (balanced quotes)."""
    for command in seed_commands():
        shlex.split(command.text.replace("\\\n", " "))
