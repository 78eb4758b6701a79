"""The sync client over ``httpx.MockTransport``: keys, batching, retries, errors, the spool."""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from stripemeter.client import (
    AuthenticationError,
    ClientClosedError,
    Event,
    EventsRejectedError,
    NetworkError,
    Retry,
    ServerError,
    StripeMeterClient,
    StripeMeterError,
    ValidationError,
)
from tests.sdk.conftest import FakeIngest

URL = "http://meter.test"


def make(fake: FakeIngest, tmp_path: Path, **options: Any) -> StripeMeterClient:
    """A client on the fake endpoint with a recorded, instant sleep."""
    sleeps: list[float] = []
    options.setdefault("flush_interval", None)
    options.setdefault("spool", tmp_path / "spool")
    options.setdefault("retry", Retry(jitter=0.0))
    client = StripeMeterClient(
        api_url=URL, api_key="sm_test", tenant_id="sdk", customer_id="cus_1",
        transport=httpx.MockTransport(fake), sleep=sleeps.append, **options,
    )  # fmt: skip
    client.sleeps = sleeps  # type: ignore[attr-defined]
    return client


class TestTrack:
    def test_the_key_is_fixed_when_the_event_is_tracked(
        self, fake: FakeIngest, tmp_path: Path
    ) -> None:
        """``track`` returns the event with its key, and that key is what the server receives."""
        with make(fake, tmp_path) as client:
            event = client.track(metric="api_calls", customer_ref="cus_ABC123", quantity=100)
            assert event.idempotency_key.startswith("sdk_")
            client.flush()
        assert fake.keys() == [event.idempotency_key]
        sent = fake.batches[0][0]
        assert sent == {
            "metric": "api_calls", "customerRef": "cus_ABC123", "quantity": "100",
            "ts": sent["ts"], "idempotencyKey": event.idempotency_key, "source": "sdk",
        }  # fmt: skip
        assert sent["ts"].endswith("Z")

    def test_customer_ref_defaults_to_customer_id(self, fake: FakeIngest, tmp_path: Path) -> None:
        """Without ``customer_ref`` the client's ``customer_id`` is used."""
        with make(fake, tmp_path) as client:
            assert client.track(metric="api_calls", quantity=1).customer_ref == "cus_1"

    def test_quantities_stay_exact(self, fake: FakeIngest, tmp_path: Path) -> None:
        """0.1 as a float is sent as 0.1, a Decimal keeps its digits."""
        with make(fake, tmp_path) as client:
            client.track(metric="gb", quantity=0.1)
            client.track(metric="gb", quantity=Decimal("12.345000000001"))
            client.flush()
        assert [e["quantity"] for e in fake.batches[0]] == ["0.1", "12.345000000001"]

    def test_bad_arguments_fail_at_track_time(self, fake: FakeIngest, tmp_path: Path) -> None:
        """A missing metric, NaN or a non-JSON meta is refused before anything is queued."""
        with make(fake, tmp_path) as client:
            with pytest.raises(ValueError, match="metric"):
                client.track(metric="", quantity=1)
            with pytest.raises(ValueError, match="finite"):
                client.track(metric="m", quantity=float("nan"))
            with pytest.raises(TypeError, match="meta"):
                client.track(metric="m", quantity=1, meta={"x": object()})
            assert client.pending == 0

    def test_meta_resource_and_own_key_are_sent(self, fake: FakeIngest, tmp_path: Path) -> None:
        """Optional fields go out under their wire names."""
        with make(fake, tmp_path) as client:
            client.track(
                metric="m",
                quantity=1,
                meta={"region": "eu"},
                resource_id="r1",
                idempotency_key="order-42",
                ts="2025-01-16T15:30:00+01:00",
            )
            client.flush()
        sent = fake.batches[0][0]
        assert sent["meta"] == {"region": "eu"}
        assert sent["resourceId"] == "r1"
        assert sent["idempotencyKey"] == "order-42"
        assert sent["ts"] == "2025-01-16T14:30:00Z"

    def test_track_many_takes_dicts_and_events(self, fake: FakeIngest, tmp_path: Path) -> None:
        """Dicts use track()'s argument names; Event objects keep their keys."""
        ready = Event.create(metric="m", customer_ref="c", quantity=2)
        with make(fake, tmp_path) as client:
            events = client.track_many([{"metric": "m", "quantity": 1}, ready])
            client.flush()
        assert [e.customer_ref for e in events] == ["cus_1", "c"]
        assert fake.keys() == [events[0].idempotency_key, ready.idempotency_key]

    def test_a_closed_client_refuses_work(self, fake: FakeIngest, tmp_path: Path) -> None:
        """After ``close`` tracking raises ClientClosedError; closing twice is fine."""
        client = make(fake, tmp_path)
        client.close()
        client.close()
        with pytest.raises(ClientClosedError):
            client.track(metric="m", quantity=1)


class TestBatching:
    def test_flush_sends_in_batches_of_batch_size(self, fake: FakeIngest, tmp_path: Path) -> None:
        """Seven events with batch_size 3 go out as 3, 3 and 1, in tracking order."""
        with make(fake, tmp_path, batch_size=3) as client:
            tracked = [client.track(metric="m", quantity=i) for i in range(7)]
            result = client.flush()
        assert [len(b) for b in fake.batches] == [3, 3, 1]
        assert fake.keys() == [e.idempotency_key for e in tracked]
        assert result.accepted == 1  # the two full batches went out inline, at track time

    def test_a_full_batch_wakes_the_thread(self, fake: FakeIngest, tmp_path: Path) -> None:
        """Reaching batch_size sends without waiting for the (long) interval."""
        with make(fake, tmp_path, batch_size=5, flush_interval=60.0) as client:
            client.track_many([{"metric": "m", "quantity": 1}] * 5)
            deadline = time.monotonic() + 5
            while not fake.requests and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(fake.requests) == 1
            assert client.pending == 0

    def test_the_interval_flushes_a_partial_batch(self, fake: FakeIngest, tmp_path: Path) -> None:
        """One event is sent after flush_interval without any call."""
        with make(fake, tmp_path, flush_interval=0.05) as client:
            client.track(metric="m", quantity=1)
            deadline = time.monotonic() + 5
            while client.pending and time.monotonic() < deadline:
                time.sleep(0.01)
            assert client.pending == 0
        assert len(fake.keys()) == 1

    def test_close_flushes(self, fake: FakeIngest, tmp_path: Path) -> None:
        """Leaving the ``with`` block sends what is queued."""
        with make(fake, tmp_path, flush_interval=60.0) as client:
            client.track(metric="m", quantity=1)
            assert fake.requests == []
        assert len(fake.keys()) == 1

    def test_without_a_thread_a_full_batch_is_sent_inline(
        self, fake: FakeIngest, tmp_path: Path
    ) -> None:
        """flush_interval=None: the tracking thread sends a full batch itself."""
        with make(fake, tmp_path, batch_size=2) as client:
            client.track(metric="m", quantity=1)
            assert fake.requests == []
            client.track(metric="m", quantity=1)
            assert len(fake.requests) == 1


class TestRetries:
    def test_5xx_and_network_errors_are_retried_with_the_same_keys(
        self, fake: FakeIngest, tmp_path: Path
    ) -> None:
        """Every attempt carries the same events with the same idempotency keys."""
        fake.script = [503, httpx.ConnectError("refused"), 500]
        with make(fake, tmp_path) as client:
            event = client.track(metric="m", quantity=1)
            result = client.flush()
            assert client.sleeps == [0.5, 1.0, 2.0]  # type: ignore[attr-defined]
        assert fake.keys() == [event.idempotency_key] * 4
        assert result.accepted == 1

    def test_a_resent_event_is_a_duplicate(self, fake: FakeIngest, tmp_path: Path) -> None:
        """When the answer to an accepted batch is lost, the retry is reported duplicate."""

        def lose_first_answer(request: httpx.Request) -> httpx.Response:
            response = fake(request)
            if len(fake.requests) == 1:
                raise httpx.ReadError("connection reset after the server committed")
            return response

        client = StripeMeterClient(
            api_url=URL, spool=tmp_path / "s", flush_interval=None, sleep=lambda _s: None,
            transport=httpx.MockTransport(lose_first_answer),
        )  # fmt: skip
        with client:
            client.track(metric="m", customer_ref="c", quantity=1)
            result = client.flush()
        assert (result.accepted, result.duplicates) == (0, 1)
        assert len(fake.seen) == 1

    def test_429_honours_retry_after(self, fake: FakeIngest, tmp_path: Path) -> None:
        """The wait after a 429 is the server's Retry-After."""
        fake.script = [httpx.Response(429, headers={"Retry-After": "3"}, json={})]
        with make(fake, tmp_path) as client:
            client.track(metric="m", quantity=1)
            client.flush()
            assert client.sleeps == [3.0]  # type: ignore[attr-defined]

    def test_running_out_of_retries_raises_and_keeps_the_events(
        self, fake: FakeIngest, tmp_path: Path
    ) -> None:
        """After the last 503 flush raises ServerError; the event is still queued."""
        fake.script = [503] * 3
        with make(fake, tmp_path, retry=Retry(attempts=3, jitter=0.0)) as client:
            client.track(metric="m", quantity=1)
            with pytest.raises(ServerError) as caught:
                client.flush()
            assert caught.value.status == 503
            assert client.pending == 1
            client.flush()
            assert client.pending == 0

    def test_network_failure_raises_network_error(self, fake: FakeIngest, tmp_path: Path) -> None:
        """A server that never answers ends in NetworkError, chained to the httpx error."""
        fake.script = [httpx.ConnectError("refused")] * 2
        with make(fake, tmp_path, retry=Retry(attempts=2, jitter=0.0)) as client:
            client.track(metric="m", quantity=1)
            with pytest.raises(NetworkError) as caught:
                client.flush()
            assert isinstance(caught.value.__cause__, httpx.ConnectError)
            fake.script.clear()

    def test_401_is_not_retried(self, fake: FakeIngest, tmp_path: Path) -> None:
        """A bad key raises AuthenticationError after one request, and keeps the events."""
        fake.script = [
            httpx.Response(
                401,
                json={
                    "error": {
                        "type": "authentication_error",
                        "code": "invalid_api_key",
                        "message": "invalid",
                    }
                },
            )
        ]
        with make(fake, tmp_path) as client:
            client.track(metric="m", quantity=1)
            with pytest.raises(AuthenticationError) as caught:
                client.flush()
            assert caught.value.code == "invalid_api_key"
            assert len(fake.requests) == 1
            assert client.pending == 1


class TestRejections:
    def test_rejected_events_raise_with_their_results_and_leave_the_queue(
        self, fake: FakeIngest, tmp_path: Path
    ) -> None:
        """A partly rejected batch: the good events count, the bad one is reported, none stay."""
        fake.reject = lambda event: event["metric"] == "bad"
        with make(fake, tmp_path) as client:
            good = client.track(metric="ok", quantity=1)
            bad = client.track(metric="bad", quantity=1)
            with pytest.raises(EventsRejectedError) as caught:
                client.flush()
            assert client.pending == 0
        error = caught.value
        assert isinstance(error, ValidationError)
        assert error.events == (bad,)
        assert [r.status for r in error.results] == ["rejected"]
        assert error.results[0].error is not None
        assert error.results[0].error.code == "invalid_quantity"
        assert error.code == "invalid_quantity"
        assert good.idempotency_key in fake.seen
        assert len(fake.requests) == 1  # never retried

    def test_an_all_rejected_batch_is_not_retried(self, fake: FakeIngest, tmp_path: Path) -> None:
        """The 400 with per-event results is an answer: one request, the event leaves."""
        fake.reject = lambda _event: True
        with make(fake, tmp_path) as client:
            client.track(metric="m", quantity=1)
            with pytest.raises(EventsRejectedError):
                client.flush()
            assert client.pending == 0
        assert len(fake.requests) == 1

    def test_ingest_raises_validation_error_with_results(
        self, fake: FakeIngest, tmp_path: Path
    ) -> None:
        """``ingest`` sends now and raises ValidationError carrying the per-event results."""
        fake.reject = lambda _event: True
        with make(fake, tmp_path) as client, pytest.raises(ValidationError) as caught:
            client.ingest([{"metric": "m", "quantity": 1}])
        assert caught.value.status == 400
        assert caught.value.results[0].status == "rejected"

    def test_background_rejections_go_to_on_error(self, fake: FakeIngest, tmp_path: Path) -> None:
        """The flush thread hands rejections to the ``on_error`` callback."""
        fake.reject = lambda _event: True
        seen: list[StripeMeterError] = []
        done = threading.Event()

        def on_error(error: StripeMeterError) -> None:
            seen.append(error)
            done.set()

        with make(fake, tmp_path, flush_interval=0.05, on_error=on_error) as client:
            client.track(metric="m", quantity=1)
            assert done.wait(5)
        assert isinstance(seen[0], EventsRejectedError)


class TestSpool:
    def test_events_survive_a_client_that_could_not_send(
        self, fake: FakeIngest, tmp_path: Path
    ) -> None:
        """Tracked while the server is down, delivered by the next client, once, same keys."""
        down = FakeIngest(script=[httpx.ConnectError("down")] * 100)
        first = make(down, tmp_path, retry=Retry(attempts=2, jitter=0.0))
        tracked = [first.track(metric="m", quantity=i) for i in range(3)]
        first.close()  # the final flush fails too; nothing is lost
        assert first.spool_path is not None
        assert first.spool_path.exists()

        with make(fake, tmp_path) as second:
            assert second.spool_path == first.spool_path
            assert second.pending == 3
            second.flush()
        assert fake.keys() == [e.idempotency_key for e in tracked]

    def test_the_spool_is_per_url_and_tenant(self, fake: FakeIngest, tmp_path: Path) -> None:
        """Another tenant or server gets another file; the same pair gets the same one."""
        spool = tmp_path / "spool"
        a = StripeMeterClient(api_url=URL, tenant_id="a", spool=spool, flush_interval=None)
        b = StripeMeterClient(api_url=URL, tenant_id="b", spool=spool, flush_interval=None)
        c = StripeMeterClient(api_url=URL + "/", tenant_id="a", spool=spool, flush_interval=None)
        d = StripeMeterClient(
            api_url="http://other.test", tenant_id="a", spool=spool, flush_interval=None
        )
        try:
            assert a.spool_path == c.spool_path
            assert len({a.spool_path, b.spool_path, d.spool_path}) == 3
        finally:
            for client in (a, b, c, d):
                client.close()

    def test_the_default_spool_is_in_the_user_cache(self, tmp_path: Path) -> None:
        """``spool=True`` puts the file under $XDG_CACHE_HOME/stripemeter/spool."""
        with StripeMeterClient(api_url=URL, flush_interval=None) as client:
            assert client.spool_path is not None
            assert client.spool_path.parent == tmp_path / "xdg-cache" / "stripemeter" / "spool"

    def test_without_spool_events_are_only_in_memory(
        self, fake: FakeIngest, tmp_path: Path
    ) -> None:
        """``spool=False`` writes no file and still delivers."""
        with make(fake, tmp_path, spool=False) as client:
            assert client.spool_path is None
            client.track(metric="m", quantity=1)
            client.flush()
        assert len(fake.keys()) == 1
        assert not (tmp_path / "spool").exists()

    def test_the_spool_holds_the_wire_json(self, fake: FakeIngest, tmp_path: Path) -> None:
        """What is stored is exactly what will be sent (key included)."""
        import sqlite3

        with make(fake, tmp_path) as client:
            event = client.track(metric="m", quantity=Decimal("1.5"), meta={"a": 1})
            assert client.spool_path is not None
            conn = sqlite3.connect(client.spool_path)
            try:
                (body,) = conn.execute("SELECT body FROM spooled_events_v1").fetchone()
            finally:
                conn.close()
            assert json.loads(body) == event.to_wire()
