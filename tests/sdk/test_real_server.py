"""The SDK against a real ``stripemeter serve`` over HTTP: the seed's calls, retries, outages."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from stripemeter import AsyncStripeMeterClient, StripeMeterClient
from stripemeter.client import (
    AuthenticationError,
    EventsRejectedError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    Retry,
    ValidationError,
)
from tests.acceptance.support import read_ledger
from tests.sdk.conftest import TENANT, RealServer

APP = Path(__file__).with_name("app.py")
APP_TIMEOUT = 30.0


def client_for(server: RealServer, tmp_path: Path, **options: object) -> StripeMeterClient:
    """A client of the test tenant with its spool under ``tmp_path``."""
    options.setdefault("spool", tmp_path / "spool")
    return StripeMeterClient(
        api_url=server.url,
        api_key=server.key,
        tenant_id=TENANT,
        **options,  # type: ignore[arg-type]
    )


def ledger_keys(server: RealServer, customer: str) -> list[str]:
    """The idempotency keys stored for one customer, in ledger order."""
    return [
        row.idempotency_key
        for row in read_ledger(server.database_url, TENANT)
        if row.customer_ref == customer
    ]


def test_the_seed_calls_work_as_written(server: RealServer) -> None:
    """The README's snippet (plus api_key) tracks an event that shows up in the usage."""
    client = StripeMeterClient(
        api_url=server.url,
        tenant_id="sdk",
        customer_id="cus_ABC123",
        api_key=server.key,
    )
    client.track(
        metric="api_calls",
        customer_ref="cus_ABC123",
        quantity=100,
    )
    client.close()

    with StripeMeterClient(
        api_url=server.url, api_key=server.key, tenant_id="sdk", customer_id="cus_ABC123"
    ) as reader:
        usage = reader.get_usage()
    metric = usage.get("api_calls")
    assert metric is not None
    assert metric.current == Decimal(100)
    assert usage.customer_ref == "cus_ABC123"
    assert usage.period_start is not None
    assert usage.period_end is not None


def test_a_retried_event_is_a_duplicate(server: RealServer, tmp_path: Path) -> None:
    """Sending the same tracked event twice counts it once: the second answer is duplicate."""
    with client_for(server, tmp_path, flush_interval=None) as client:
        event = client.track(metric="api_calls", customer_ref="cus_retry", quantity=5)
        first = client.flush()
        again = client.ingest([event])
        usage = client.get_usage("cus_retry")
    assert (first.accepted, first.duplicates) == (1, 0)
    assert (again.accepted, again.duplicates) == (0, 1)
    assert again.results[0].idempotency_key == event.idempotency_key
    assert ledger_keys(server, "cus_retry") == [event.idempotency_key]
    metric = usage.get("api_calls")
    assert metric is not None
    assert metric.current == 5


def test_rejections_carry_the_servers_reasons(server: RealServer, tmp_path: Path) -> None:
    """A future timestamp is rejected by the server; flush raises with the per-event result."""
    with client_for(server, tmp_path, flush_interval=None) as client:
        client.track(metric="api_calls", customer_ref="cus_rej", quantity=1)
        client.track(
            metric="api_calls", customer_ref="cus_rej", quantity=1, ts="2999-01-01T00:00:00Z"
        )
        with pytest.raises(EventsRejectedError) as caught:
            client.flush()
        assert client.pending == 0
    error = caught.value
    assert error.code == "timestamp_in_future"
    assert error.results[0].index == 1
    assert error.events[0].ts.year == 2999
    assert len(ledger_keys(server, "cus_rej")) == 1


def test_ingest_of_an_invalid_batch_raises_validation_error(
    server: RealServer, tmp_path: Path
) -> None:
    """All events rejected: HTTP 400, never retried, with the results on the exception."""
    with (
        client_for(server, tmp_path, flush_interval=None) as client,
        pytest.raises(ValidationError) as caught,
    ):
        client.ingest(
            [{"metric": "m", "customer_ref": "c", "quantity": 1, "ts": "2999-01-01T00:00:00Z"}]
        )
    assert caught.value.status == 400
    assert caught.value.results[0].status == "rejected"


def test_a_wrong_key_or_tenant_is_a_typed_error(server: RealServer, tmp_path: Path) -> None:
    """401 for an unknown key, 403 when tenant_id is not the key's tenant."""
    with (
        StripeMeterClient(
            api_url=server.url, api_key="sm_nope_nope", spool=False, customer_id="c"
        ) as client,
        pytest.raises(AuthenticationError),
    ):
        client.get_usage()
    with (
        StripeMeterClient(
            api_url=server.url, api_key=server.key, tenant_id="other", spool=False, customer_id="c"
        ) as client,
        pytest.raises(PermissionDeniedError),
    ):
        client.get_usage()


def test_events_are_listed_page_by_page(server: RealServer, tmp_path: Path) -> None:
    """``list_events`` follows the cursor until every event was seen."""
    with client_for(server, tmp_path, flush_interval=None) as client:
        tracked = [
            client.track(metric="pages", customer_ref="cus_pages", quantity=i) for i in range(5)
        ]
        client.flush()
        listed = list(client.list_events("cus_pages", page_size=2))
    assert sorted(e.idempotency_key for e in listed) == sorted(e.idempotency_key for e in tracked)
    assert {e.quantity for e in listed} == {Decimal(i) for i in range(5)}
    assert all(e.status == "accepted" and e.source == "sdk" for e in listed)


def test_usage_history_is_read(server: RealServer, tmp_path: Path) -> None:
    """``get_usage_history`` returns buckets whose values add up to what was tracked."""
    with client_for(server, tmp_path, flush_interval=None) as client:
        client.track_many(
            [{"metric": "hist", "customer_ref": "cus_hist", "quantity": q} for q in (1, 2, 3)]
        )
        client.flush()
        history = client.get_usage_history("cus_hist", metric="hist", interval="day")
    assert history.metric == "hist"
    assert history.total == 6
    assert sum(p.value for p in history.points) == 6


def test_events_tracked_at_exit_are_sent_by_the_atexit_hook(
    server: RealServer, tmp_path: Path
) -> None:
    """An app that never calls close() still delivers its events when the interpreter exits."""
    done = subprocess.run(
        [sys.executable, str(APP), server.url, server.key, str(tmp_path / "spool"), "3",
         "--no-close", "--customer", "cus_atexit"],
        capture_output=True, text=True, timeout=APP_TIMEOUT, check=True,
    )  # fmt: skip
    keys = json.loads(done.stdout.splitlines()[-1])
    assert sorted(ledger_keys(server, "cus_atexit")) == sorted(keys)


def test_an_outage_loses_nothing_and_counts_nothing_twice(
    server: RealServer, tmp_path: Path
) -> None:
    """Server stopped mid-tracking, app exits; after a restart the next client delivers once."""
    spool = tmp_path / "spool"
    with subprocess.Popen(
        [sys.executable, str(APP), server.url, server.key, str(spool), "10", "--pause-at", "4"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as app:  # fmt: skip
        assert app.stdout is not None
        assert app.stdin is not None
        assert app.stdout.readline().strip() == "paused"
        assert len(ledger_keys(server, "cus_app")) == 4  # delivered before the outage

        server.process.stop()  # the outage
        app.stdin.write("go\n")
        app.stdin.flush()
        out, err = app.communicate(timeout=APP_TIMEOUT)
    assert app.returncode == 0, err
    keys = json.loads(out.splitlines()[-1])
    assert len(keys) == 10

    server.restart()
    with client_for(server, tmp_path, flush_interval=None) as client:
        assert client.pending == 6
        result = client.flush()
        assert client.pending == 0
    # A third client finds nothing left to send, and the usage counts every event once.
    with client_for(server, tmp_path, flush_interval=None) as client:
        assert client.pending == 0
        metric = client.get_usage("cus_app").get("api_calls")
    assert metric is not None
    assert metric.current == 10
    assert (result.accepted, result.duplicates) == (6, 0)
    stored = ledger_keys(server, "cus_app")
    assert sorted(stored) == sorted(keys)  # every event, each exactly once


def test_a_stopped_server_is_a_network_error(tmp_path: Path) -> None:
    """Nothing listening: flush raises NetworkError after its retries, the event stays."""
    with StripeMeterClient(
        api_url="http://127.0.0.1:9",
        spool=tmp_path / "s",
        flush_interval=None,
        retry=Retry(attempts=2, backoff=0.01),
        close_budget=0.0,
    ) as client:
        client.track(metric="m", customer_ref="c", quantity=1)
        with pytest.raises(NetworkError):
            client.flush()
        assert client.pending == 1


async def test_the_async_client_tracks_and_reads(server: RealServer, tmp_path: Path) -> None:
    """The async twin: track, flush, usage and event listing against the real server."""
    async with AsyncStripeMeterClient(
        api_url=server.url, api_key=server.key, tenant_id=TENANT, customer_id="cus_async",
        spool=tmp_path / "spool",
    ) as client:  # fmt: skip
        event = await client.track(metric="api_calls", quantity=7)
        result = await client.flush()
        again = await client.ingest([event])
        usage = await client.get_usage()
        listed = [e async for e in client.list_events("cus_async")]
    assert result.accepted == 1
    assert again.duplicates == 1
    metric = usage.get("api_calls")
    assert metric is not None
    assert metric.current == 7
    assert [e.idempotency_key for e in listed] == [event.idempotency_key]


def test_the_projection_is_read(server: RealServer, tmp_path: Path) -> None:
    """``get_projection`` returns the customer's metrics; one without a price says so."""
    with client_for(server, tmp_path, flush_interval=None, customer_id="cus_proj") as client:
        client.track(metric="proj", quantity=3)
        client.flush()
        projection = client.get_projection()
    assert projection.customer_ref == "cus_proj"
    assert projection.period_start is not None
    (line,) = [item for item in projection.line_items if item.metric == "proj"]
    assert line.quantity == 3
    assert not line.priced
    assert line.total is None
    assert "proj" in projection.unpriced_metrics
    assert not projection.complete


def test_price_mappings_are_validated_by_the_server(server: RealServer, tmp_path: Path) -> None:
    """create_mapping sends camelCase fields; a meter unknown to Stripe is a typed 400."""
    with client_for(server, tmp_path, spool=False) as client:
        assert client.list_mappings(metric="sdk_mapped") == []
        with pytest.raises(ValidationError) as caught:
            client.create_mapping(
                metric="sdk_mapped", aggregation="sum", meter_event_name="no_such_meter"
            )
    assert caught.value.code == "meter_not_found"
    assert caught.value.param == "meterEventName"


def test_customer_mappings_round_trip(server: RealServer, tmp_path: Path) -> None:
    """set, get, list and delete a customerRef → Stripe customer mapping."""
    with client_for(server, tmp_path, spool=False) as client:
        saved = client.set_customer("cus_sdk_map", "cus_Stripe123")
        assert saved["stripeCustomerId"] == "cus_Stripe123"
        assert client.get_customer("cus_sdk_map")["customerRef"] == "cus_sdk_map"
        listed = [c["customerRef"] for c in client.list_customers(page_size=1)]
        assert "cus_sdk_map" in listed
        client.delete_customer("cus_sdk_map")
        with pytest.raises(NotFoundError):
            client.get_customer("cus_sdk_map")
