"""The async client over ``httpx.MockTransport``: the same behaviour as the sync one."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from stripemeter.client import (
    AsyncStripeMeterClient,
    EventsRejectedError,
    Retry,
    ServerError,
)
from tests.sdk.conftest import FakeIngest

URL = "http://meter.test"


def make(
    fake: FakeIngest, tmp_path: Path, sleeps: list[float], **options: Any
) -> AsyncStripeMeterClient:
    """An async client on the fake endpoint with a recorded, instant sleep."""

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    options.setdefault("flush_interval", None)
    options.setdefault("spool", tmp_path / "spool")
    options.setdefault("retry", Retry(jitter=0.0))
    return AsyncStripeMeterClient(
        api_url=URL, api_key="sm_test", tenant_id="sdk", customer_id="cus_1",
        transport=httpx.MockTransport(fake), sleep=sleep, **options,
    )  # fmt: skip


async def test_retries_back_off_and_keep_the_keys(fake: FakeIngest, tmp_path: Path) -> None:
    """Two 503s then success: waits of 0.5 and 1 s, the same key three times."""
    fake.script = [503, 503]
    sleeps: list[float] = []
    async with make(fake, tmp_path, sleeps) as client:
        event = await client.track(metric="m", quantity=1)
        result = await client.flush()
    assert sleeps == [0.5, 1.0]
    assert fake.keys() == [event.idempotency_key] * 3
    assert result.accepted == 1


async def test_giving_up_keeps_the_events(fake: FakeIngest, tmp_path: Path) -> None:
    """After the last 503 flush raises and the event waits for the next flush."""
    fake.script = [503, 503]
    sleeps: list[float] = []
    async with make(fake, tmp_path, sleeps, retry=Retry(attempts=2, jitter=0.0)) as client:
        await client.track(metric="m", quantity=1)
        with pytest.raises(ServerError):
            await client.flush()
        assert await client.pending() == 1
        await client.flush()
        assert await client.pending() == 0


async def test_rejections_raise_with_results(fake: FakeIngest, tmp_path: Path) -> None:
    """A rejected event raises EventsRejectedError and leaves the spool."""
    fake.reject = lambda event: event["metric"] == "bad"
    async with make(fake, tmp_path, []) as client:
        await client.track(metric="bad", quantity=1)
        with pytest.raises(EventsRejectedError) as caught:
            await client.flush()
        assert await client.pending() == 0
    assert caught.value.results[0].status == "rejected"


async def test_the_background_task_flushes_on_interval(fake: FakeIngest, tmp_path: Path) -> None:
    """Without any flush call the task sends the event after flush_interval."""
    async with make(fake, tmp_path, [], flush_interval=0.05) as client:
        await client.track(metric="m", quantity=1)
        for _ in range(200):
            if fake.requests:
                break
            await asyncio.sleep(0.01)
    assert len(fake.keys()) == 1


async def test_aclose_flushes_and_a_new_client_sends_leftovers(
    fake: FakeIngest, tmp_path: Path
) -> None:
    """Events a failing close could not send are sent by the next client of the spool."""
    down = FakeIngest(script=[httpx.ConnectError("down")] * 100)
    first = make(down, tmp_path, [], retry=Retry(attempts=2, jitter=0.0))
    event = await first.track(metric="m", quantity=1)
    await first.aclose()
    async with make(fake, tmp_path, [], flush_interval=0.05) as second:
        for _ in range(200):
            if fake.requests:
                break
            await asyncio.sleep(0.01)
        assert fake.keys() == [event.idempotency_key]  # sent by the task, before aclose
        assert await second.pending() == 0
