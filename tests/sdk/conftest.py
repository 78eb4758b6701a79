"""Fixtures of the SDK tests: an isolated cache directory, a mock server, a real server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.support import ServerProcess, create_key, migrate

TENANT = "sdk"


@pytest.fixture(autouse=True)
def _cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default spool lives under a temporary XDG cache, never the developer's."""
    cache = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@dataclass
class FakeIngest:
    """A stand-in ingest endpoint for ``httpx.MockTransport``: records requests, scripted answers.

    ``script`` holds answers to give first (a status code, an ``httpx.Response`` or an exception
    to raise); afterwards every event is accepted, or reported duplicate when its key was seen.
    """

    script: list[int | httpx.Response | Exception] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    reject: Callable[[dict[str, Any]], bool] = lambda _event: False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            if self.script:
                step = self.script.pop(0)
                if isinstance(step, Exception):
                    raise step
                if isinstance(step, httpx.Response):
                    return step
                return httpx.Response(
                    step,
                    json={
                        "error": {"type": "api_error", "code": "x", "message": f"scripted {step}"}
                    },
                )
            body = json.loads(request.content)
            results = []
            for index, event in enumerate(body["events"]):
                key = event["idempotencyKey"]
                if self.reject(event):
                    results.append(
                        {
                            "index": index,
                            "status": "rejected",
                            "idempotencyKey": key,
                            "error": {
                                "field": "quantity",
                                "code": "invalid_quantity",
                                "message": "quantity is wrong",
                            },
                        }
                    )
                elif key in self.seen:
                    results.append({"index": index, "status": "duplicate", "idempotencyKey": key})
                else:
                    self.seen.add(key)
                    results.append({"index": index, "status": "accepted", "idempotencyKey": key})
            totals = {
                s: sum(r["status"] == s for r in results)
                for s in ("accepted", "duplicate", "rejected")
            }
            status = 400 if totals["rejected"] == len(results) else 200
            return httpx.Response(
                status,
                json={
                    "accepted": totals["accepted"],
                    "duplicates": totals["duplicate"],
                    "conflicts": 0,
                    "held": 0,
                    "rejected": totals["rejected"],
                    "requestId": "req_1",
                    "results": results,
                },
            )

    @property
    def batches(self) -> list[list[dict[str, Any]]]:
        """The events of every request received, in order."""
        return [json.loads(r.content)["events"] for r in self.requests]

    def keys(self) -> list[str]:
        """The idempotency keys of every event received (repeats included)."""
        return [e["idempotencyKey"] for batch in self.batches for e in batch]


@pytest.fixture
def fake() -> FakeIngest:
    """A scripted ingest endpoint."""
    return FakeIngest()


@dataclass
class RealServer:
    """A running ``stripemeter serve`` with an admin key of tenant ``sdk``."""

    process: ServerProcess
    database_url: str
    key: str
    cwd: Path

    @property
    def url(self) -> str:
        """The base URL."""
        return self.process.url

    def restart(self) -> None:
        """Start the server again on the same port and database (after ``process.stop()``)."""
        self.process.stop()
        self.process = ServerProcess(self.database_url, self.cwd, port=self.process.port)
        self.process.wait_ready()


@pytest.fixture(scope="module")
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], RealServer]]:
    """Start servers on fresh SQLite databases; each is stopped at the end of the module."""
    started: list[RealServer] = []

    def start() -> RealServer:
        cwd = tmp_path_factory.mktemp("server")
        database_url = f"sqlite:///{cwd / 'x.db'}"
        migrate(database_url, cwd)
        key = create_key(database_url, cwd, TENANT)
        process = ServerProcess(database_url, cwd)
        real = RealServer(process, database_url, key, cwd)
        started.append(real)
        process.wait_ready()
        return real

    yield start
    for real in started:
        real.process.stop()


@pytest.fixture(scope="module")
def server(server_factory: Callable[[], RealServer]) -> RealServer:
    """One real server shared by a module's tests (each test uses its own customers)."""
    return server_factory()
