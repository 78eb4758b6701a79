"""``StripeMeterClient``: the synchronous client, with a background flush thread."""

from __future__ import annotations

import atexit
import functools
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from types import TracebackType
from typing import Any, TypeVar

import httpx

from stripemeter.client import _api as api
from stripemeter.client._base import (
    BaseClient,
    ErrorCallback,
    TimeoutSetting,
    decode_json,
    error_from_response,
    ingest_answer,
    interpret_ingest,
    log,
    network_error,
    outcome_of,
    rejection_error,
)
from stripemeter.client._config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CLOSE_BUDGET,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_TIMEOUT,
    USE_CLIENT_DEFAULT,
    Retry,
    UseClientDefault,
)
from stripemeter.client._exceptions import (
    ClientClosedError,
    StripeMeterError,
    ValidationError,
)
from stripemeter.client._models import (
    Entitlement,
    Event,
    EventRecord,
    EventResult,
    IngestResult,
    Projection,
    Resource,
    Usage,
    UsageHistory,
    new_idempotency_key,
)
from stripemeter.client._retry import Failed, Outcome, Wait, retry_flow
from stripemeter.client._spool import open_store
from stripemeter.client._types import QuantityLike, SpoolSetting, TimeLike

T = TypeVar("T")
LOCK_POLL_INTERVAL = 0.05  # seconds between tries of another process's spool lock


class _Stopped(Exception):
    """The client is closing: a background drain gives way to the final one."""


class StripeMeterClient(BaseClient):
    """Track usage events and read usage from a StripeMeter server.

    ``track`` returns at once: the event gets its idempotency key, is written to the spool, and a
    background thread sends it in batches (every ``flush_interval`` seconds, or as soon as
    ``batch_size`` events wait). ``flush()`` sends everything now; ``close()`` (or leaving a
    ``with`` block, or the interpreter exiting) flushes and releases the client.

    Args:
        api_url: the server, e.g. ``http://localhost:3000`` (default ``$STRIPEMETER_API_URL``).
        api_key: an API key (default ``$STRIPEMETER_API_KEY``); sent as ``Authorization: Bearer``.
        tenant_id: the tenant; the server checks that it is the key's. Also names the spool.
        customer_id: the default ``customer_ref`` of ``track`` and the usage calls.
        timeout: seconds per request (a number, a ``Timeout`` or ``None`` for none).
        retry: the retry policy (``None``: no retries).
        batch_size: events per ingest request (1 to 1000).
        flush_interval: seconds between background flushes; ``None``: no background thread.
        spool: ``True`` (default) for the user's cache directory, a directory or ``.sqlite3``
            file path, or ``False``/``None`` to keep unsent events in memory only.
        close_budget: seconds of retry waits allowed when flushing at ``close()`` or exit.
        on_error: called with the error when a background flush fails or events are rejected
            (default: a warning on the ``stripemeter.client`` logger).
        transport: an ``httpx.BaseTransport`` (tests use ``httpx.MockTransport``).
    """

    def __init__(
        self,
        api_url: str | None = None,
        api_key: str | None = None,
        tenant_id: str | None = None,
        customer_id: str | None = None,
        *,
        timeout: TimeoutSetting = DEFAULT_TIMEOUT,
        retry: Retry | None = Retry(),
        batch_size: int = DEFAULT_BATCH_SIZE,
        flush_interval: float | None = DEFAULT_FLUSH_INTERVAL,
        spool: SpoolSetting = True,
        close_budget: float | None = DEFAULT_CLOSE_BUDGET,
        on_error: ErrorCallback | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
        rng: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(
            api_url=api_url or os.environ.get("STRIPEMETER_API_URL", "http://localhost:3000"),
            api_key=api_key if api_key is not None else os.environ.get("STRIPEMETER_API_KEY"),
            tenant_id=tenant_id,
            customer_id=customer_id,
            timeout=timeout,
            retry=retry,
            batch_size=batch_size,
            flush_interval=flush_interval,
            spool=spool,
            close_budget=close_budget,
            on_error=on_error,
            rng=rng,
        )
        self._http = httpx.Client(
            base_url=self.api_url,
            headers=self._headers(),
            timeout=self.timeout.to_httpx(),
            transport=transport,
        )
        self._store = open_store(self.spool_path)
        self._sleep = sleep
        self._drain_mutex = threading.Lock()
        self._state_mutex = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsent = 0
        self._closed = False
        self._atexit_hook = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit_hook)
        if self._store.count():
            # Events left by an earlier process (or an outage): send them soon.
            self._start_thread()
            self._wake.set()

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> StripeMeterClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    @property
    def pending(self) -> int:
        """Events waiting to be answered by the server (in the spool: from every process)."""
        return self._store.count()

    def close(self) -> None:
        """Flush (retrying for at most ``close_budget`` seconds), stop the thread, release files.

        Never raises for a failed flush: with the spool on, the events stay on disk for the next
        client; with it off, their loss is reported through ``on_error`` or the log.
        """
        with self._state_mutex:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._atexit_hook)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._drain(budget=self.close_budget, background=False, lock_wait=self.close_budget)
        except StripeMeterError as exc:
            self._report(exc)
        finally:
            left = self._store.count()
            if left and self.spool_path is None:
                log.error("stripemeter: %d events were not delivered and are lost (no spool)", left)
            elif left:
                log.info(
                    "stripemeter: %d events stay in %s for the next client", left, self.spool_path
                )
            self._store.close()
            self._http.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("this client is closed")

    def _start_thread(self) -> None:
        if self.flush_interval is None or self._thread is not None:
            return
        with self._state_mutex:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="stripemeter-flush", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        interval = self.flush_interval
        assert interval is not None
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._drain(budget=None, background=True, lock_wait=0.0)
            except _Stopped:
                return
            except StripeMeterError as exc:
                self._report(exc)
                self._stop.wait(interval)  # a failing server is not hammered by size wake-ups
            except Exception:  # the thread must survive anything to keep the events flowing
                log.exception("stripemeter: unexpected error in the flush thread")
                self._stop.wait(interval)

    # -- tracking ----------------------------------------------------------------------------

    def track(
        self,
        metric: str,
        customer_ref: str | None = None,
        quantity: QuantityLike = 1,
        *,
        ts: TimeLike | None = None,
        meta: Mapping[str, Any] | None = None,
        resource_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Event:
        """Record one usage event; it is sent in the background.

        The event's idempotency key is fixed now (a random ``sdk_…`` key unless you pass one),
        so however often it is re-sent, the server counts it once. Pass your own key when the
        same real-world event may be tracked twice by your code (e.g. a retried job).
        """
        event = self._event(
            metric=metric,
            customer_ref=customer_ref,
            quantity=quantity,
            ts=ts,
            meta=meta,
            resource_id=resource_id,
            idempotency_key=idempotency_key,
        )
        self._enqueue([event])
        return event

    def track_many(self, events: Sequence[Event | Mapping[str, Any]]) -> list[Event]:
        """Record several events at once (dicts take ``track``'s argument names)."""
        built = self._events(events)
        self._enqueue(built)
        return built

    def _enqueue(self, events: list[Event]) -> None:
        self._check_open()
        if not events:
            return
        self._store.put(events)  # durable before anything is sent
        self._start_thread()
        with self._state_mutex:
            self._unsent += len(events)
            full = self._unsent >= self.batch_size
            if full:
                self._unsent = 0
        if full and self._thread is not None:
            self._wake.set()
        elif full:  # no thread: the caller's thread sends the batch
            try:
                self._drain(budget=0.0, background=False, lock_wait=0.0)
            except StripeMeterError as exc:
                self._report(exc)

    def flush(self) -> IngestResult:
        """Send every waiting event now and wait for the answers.

        Raises ``EventsRejectedError`` if the server rejected some events (they are not kept),
        or the error that ended the retries (the events stay queued).
        """
        self._check_open()
        with self._state_mutex:
            self._unsent = 0
        return self._drain(budget=None, background=False, lock_wait=None, raise_rejections=True)

    def ingest(self, events: Sequence[Event | Mapping[str, Any]]) -> IngestResult:
        """Send events now, bypassing the queue and the spool, and return the server's answer.

        Raises ``ValidationError`` (with ``results``) when the server rejects the whole batch.
        """
        self._check_open()
        built = self._events(events)
        if not built:
            return IngestResult()
        response = self._send_ingest(built, budget=None, background=False)
        if response.status_code != 200:
            body = decode_json(response)
            results: tuple[EventResult, ...] = ()
            if isinstance(body, Mapping) and isinstance(body.get("results"), list):
                results = IngestResult.from_json(body).results
            raise error_from_response(response, results=results)
        return IngestResult.from_json(decode_json(response))

    def ingest_wire(self, events: Sequence[Mapping[str, Any]]) -> IngestResult:
        """Send events already in wire form (camelCase JSON objects) as they are, now.

        Nothing is checked or filled in here: the server validates each event and answers for
        each (``rejected`` with the field and reason, events without ``idempotencyKey`` get one
        derived from their content). The request is retried like any other; a batch the server
        rejects whole comes back as a result too. Other error answers raise.
        """
        self._check_open()
        if not events:
            return IngestResult()
        request = self._http.build_request(
            "POST",
            "/v1/events/ingest",
            content=self._wire_ingest_content(events),
            headers={"Content-Type": "application/json"},
        )
        return ingest_answer(self._send(request, self.retry))

    # -- sending -----------------------------------------------------------------------------

    def _drain(
        self,
        *,
        budget: float | None,
        background: bool,
        lock_wait: float | None,
        raise_rejections: bool = False,
    ) -> IngestResult:
        total = IngestResult()
        rejected: list[tuple[EventResult, Event]] = []
        with self._drain_mutex:
            if not self._lock_store(lock_wait):
                return total  # another process is sending this spool right now
            try:
                while True:
                    if background and self._stop.is_set():
                        raise _Stopped
                    batch = self._store.peek(self.batch_size)
                    if not batch:
                        break
                    response = self._send_ingest([s.event for s in batch], budget, background)
                    outcome = interpret_ingest(batch, response)
                    self._store.remove(outcome.answered)
                    total += outcome.result
                    rejected.extend(outcome.rejected)
                    if outcome.error is not None:
                        raise outcome.error
                    if not outcome.answered:
                        raise ValidationError(
                            "the server answered for none of the events", status=200
                        )
            finally:
                self._store.unlock()
        if rejected:
            error = rejection_error(rejected)
            if raise_rejections:
                raise error
            self._report(error)
        return total

    def _lock_store(self, wait: float | None) -> bool:
        deadline = None if wait is None else time.monotonic() + wait
        while not self._store.try_lock():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(LOCK_POLL_INTERVAL)
        return True

    def _send_ingest(
        self, events: Sequence[Event], budget: float | None, background: bool
    ) -> httpx.Response:
        request = self._http.build_request(
            "POST",
            "/v1/events/ingest",
            content=self._ingest_content(events),
            headers={"Content-Type": "application/json"},
        )
        return self._send(request, self.retry, budget=budget, background=background)

    def _send(
        self,
        request: httpx.Request,
        retry: Retry | None,
        *,
        budget: float | None = None,
        background: bool = False,
    ) -> httpx.Response:
        """Send with retries (the pure ``retry_flow`` decides); the last answer, or raise."""
        flow = retry_flow(retry, random=self._random, budget=budget)
        step = next(flow)
        response: httpx.Response | None = None
        try:
            while True:
                if isinstance(step, Wait):
                    self._wait(step.seconds, background)
                    step = flow.send(None)
                    continue
                outcome: Outcome
                try:
                    response = self._http.send(request)
                except httpx.TransportError as exc:
                    outcome = Failed(exc)
                else:
                    outcome = outcome_of(response)
                step = flow.send(outcome)
        except StopIteration as stop:
            final: Outcome = stop.value
        if isinstance(final, Failed):
            assert isinstance(final.error, httpx.TransportError)
            raise network_error(final.error) from final.error
        assert response is not None
        return response

    def _wait(self, seconds: float, background: bool) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        elif background:
            if self._stop.wait(seconds):
                raise _Stopped
        else:
            time.sleep(seconds)

    def _call(
        self,
        call: api.Call[T],
        *,
        timeout: TimeoutSetting | UseClientDefault = USE_CLIENT_DEFAULT,
        retry: Retry | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> T:
        self._check_open()
        headers = {"Idempotency-Key": new_idempotency_key()} if call.method == "POST" else None
        request = self._http.build_request(
            call.method,
            call.path,
            params=call.params or None,
            json=call.json,
            headers=headers,
            timeout=self._request_timeout(timeout),
        )
        response = self._send(request, self._request_retry(retry))
        if response.status_code >= 400:
            raise error_from_response(response)
        return call.parse(decode_json(response))

    def _ref(self, customer_ref: str | None) -> str:
        ref = customer_ref if customer_ref is not None else self.customer_id
        if ref is None:
            raise ValueError("customer_ref is required (or set customer_id on the client)")
        return ref

    # -- usage -------------------------------------------------------------------------------

    def get_usage(
        self,
        customer_ref: str | None = None,
        *,
        period: str | None = None,
        timeout: TimeoutSetting | UseClientDefault = USE_CLIENT_DEFAULT,
        retry: Retry | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Usage:
        """The customer's usage per metric in the current billing period (or ``period``, YYYY-MM)."""
        call = api.get_usage(self.tenant_id, self._ref(customer_ref), period)
        return self._call(call, timeout=timeout, retry=retry)

    def get_usage_history(
        self,
        customer_ref: str | None = None,
        *,
        metric: str,
        period_start: TimeLike | date | None = None,
        period_end: TimeLike | date | None = None,
        interval: api.Interval | None = None,
        timeout: TimeoutSetting | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> UsageHistory:
        """A metric's usage over ``[period_start, period_end)`` in hour, day or month buckets."""
        call = api.get_usage_history(
            self.tenant_id,
            self._ref(customer_ref),
            metric=metric,
            period_start=period_start,
            period_end=period_end,
            interval=interval,
        )
        return self._call(call, timeout=timeout)

    def check_entitlement(
        self,
        customer_ref: str | None = None,
        metric: str | None = None,
        *,
        timeout: TimeoutSetting | UseClientDefault = USE_CLIENT_DEFAULT,
        retry: Retry | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Entitlement:
        """Whether the customer may use more of ``metric`` now (false once a hard cap is reached).

        Call it before starting work the customer would be billed for; the answer is truthy when
        allowed and carries the current value, the cap and what remains.
        """
        if not metric:
            raise ValueError("metric is required")
        call = api.check_entitlement(self.tenant_id, self._ref(customer_ref), metric)
        return self._call(call, timeout=timeout, retry=retry)

    def get_projection(
        self,
        customer_ref: str | None = None,
        *,
        period: str | None = None,
        period_start: TimeLike | date | None = None,
        period_end: TimeLike | date | None = None,
        timeout: TimeoutSetting | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> Projection:
        """What the customer's invoice will say: cost so far and projected to period end.

        The period is the current one unless ``period`` (``YYYY-MM``) or both bounds are given.
        """
        call = api.get_projection(
            self.tenant_id,
            self._ref(customer_ref),
            period=period,
            period_start=period_start,
            period_end=period_end,
        )
        return self._call(call, timeout=timeout)

    def list_events(
        self,
        customer_ref: str | None = None,
        *,
        metric: str | None = None,
        status: str | None = None,
        source: str | None = None,
        start_time: TimeLike | None = None,
        end_time: TimeLike | None = None,
        page_size: int = api.DEFAULT_PAGE_SIZE,
    ) -> Iterator[EventRecord]:
        """Stored events, newest first by default, fetched page by page as you iterate."""
        params: dict[str, Any] | None = api.events_query(
            customer_ref=customer_ref,
            metric=metric,
            status=status,
            source=source,
            start_time=start_time,
            end_time=end_time,
            page_size=page_size,
        )
        while params is not None:
            page = self._call(api.list_events_page(self.tenant_id, params))
            yield from page.events
            params = page.next_params

    # -- price mappings ----------------------------------------------------------------------

    def list_mappings(
        self, *, active: bool | None = None, metric: str | None = None
    ) -> list[Resource]:
        """The tenant's price mappings (metric → Stripe meter or subscription item)."""
        call = api.list_mappings(self.tenant_id, active=active, metric=metric)
        found: tuple[Resource, ...] = self._call(call)
        return list(found)

    def get_mapping(self, mapping_id: str) -> Resource:
        """One price mapping."""
        return self._call(api.get_mapping(self.tenant_id, mapping_id))

    def create_mapping(self, *, metric: str, **fields: Any) -> Resource:
        """Create a price mapping; keyword names are the wire fields in snake_case.

        For example ``create_mapping(metric="api_calls", aggregation="sum",
        meter_event_name="api_calls", price_id="price_123", currency="usd")``.
        """
        return self._call(api.create_mapping(self.tenant_id, {"metric": metric, **fields}))

    def update_mapping(self, mapping_id: str, **fields: Any) -> Resource:
        """Change some fields of a price mapping."""
        return self._call(api.update_mapping(self.tenant_id, mapping_id, fields))

    def delete_mapping(self, mapping_id: str) -> None:
        """Delete a price mapping."""
        self._call(api.delete_mapping(self.tenant_id, mapping_id))

    # -- metric settings and prices ----------------------------------------------------------

    def get_metric(self, metric: str) -> Resource:
        """A metric's settings (its defaults, with ``configured`` false, when never set)."""
        return self._call(api.get_metric(self.tenant_id, metric))

    def set_metric(
        self,
        metric: str,
        *,
        aggregation: str,
        lateness_window_seconds: int | None = None,
        unit: str | None = None,
        description: str | None = None,
    ) -> Resource:
        """Configure how a metric is billed: ``sum``, ``max``, ``last`` or ``count`` per period."""
        fields = {
            "aggregation": aggregation,
            "lateness_window_seconds": lateness_window_seconds,
            "unit": unit,
            "description": description,
        }
        return self._call(api.set_metric(self.tenant_id, metric, fields))

    def set_metric_price(
        self,
        metric: str,
        price: Mapping[str, Any],
        *,
        limits: Mapping[str, Decimal | int | str] | None = None,
    ) -> Resource:
        """Price a metric with a Stripe Price object (minor units); ``limits`` in major units."""
        return self._call(api.set_metric_price(self.tenant_id, metric, price, limits))

    # -- customer mappings -------------------------------------------------------------------

    def list_customers(self, *, page_size: int = 100) -> Iterator[Resource]:
        """Every customer mapping (customerRef → Stripe customer), page by page as you iterate."""
        params: dict[str, Any] | None = {"limit": page_size}
        while params is not None:
            page = self._call(api.list_customers_page(self.tenant_id, params))
            yield from page.customers
            params = page.next_params

    def get_customer(self, customer_ref: str) -> Resource:
        """One customer mapping."""
        return self._call(api.get_customer(self.tenant_id, customer_ref))

    def set_customer(
        self,
        customer_ref: str,
        stripe_customer_id: str,
        *,
        shadow_stripe_customer_id: str | None = None,
    ) -> Resource:
        """Map a customer to its Stripe customer (creates or replaces)."""
        call = api.set_customer(
            self.tenant_id, customer_ref, stripe_customer_id, shadow_stripe_customer_id
        )
        return self._call(call)

    def delete_customer(self, customer_ref: str) -> None:
        """Remove a customer mapping; its counters are reported as unmapped."""
        self._call(api.delete_customer(self.tenant_id, customer_ref))

    def import_customers(self, customers: Sequence[Mapping[str, Any]]) -> Resource:
        """Create or replace up to 1,000 customer mappings at once, all or nothing.

        Items take ``customer_ref``, ``stripe_customer_id`` and ``shadow_stripe_customer_id``
        (or their camelCase wire names); the answer has ``imported`` and ``data``.
        """
        return self._call(api.import_customers(self.tenant_id, customers))

    # -- reconciliation ----------------------------------------------------------------------

    def get_reconciliation(self, period: str, *, customer_ref: str | None = None) -> Resource:
        """The reconciliation report of a period (``YYYY-MM``): local vs Stripe per customer."""
        return self._call(api.get_reconciliation(self.tenant_id, period, customer_ref=customer_ref))

    def get_reconciliation_summary(self, period_start: str, period_end: str) -> Resource:
        """Drift per metric and overall between two periods (``YYYY-MM``)."""
        return self._call(api.get_reconciliation_summary(self.tenant_id, period_start, period_end))

    def run_reconciliation(self, customer_ref: str | None = None) -> Resource:
        """Reconcile now (all customers, or one)."""
        return self._call(api.run_reconciliation(self.tenant_id, customer_ref))

    def apply_suggestion(self, suggestion_id: str) -> Resource:
        """Execute a suggested repair and re-verify."""
        return self._call(api.apply_suggestion(self.tenant_id, suggestion_id))

    # -- adjustments -------------------------------------------------------------------------

    def list_adjustments(
        self,
        *,
        metric: str | None = None,
        customer_ref: str | None = None,
        status: str | None = None,
        period_start: str | None = None,
        period_end: str | None = None,
    ) -> list[Resource]:
        """Adjustments, optionally filtered."""
        filters = {
            "metric": metric,
            "customer_ref": customer_ref,
            "status": status,
            "period_start": period_start,
            "period_end": period_end,
        }
        call = api.list_adjustments(self.tenant_id, filters)
        found: tuple[Resource, ...] = self._call(call)
        return list(found)

    def get_adjustment(self, adjustment_id: str) -> Resource:
        """One adjustment."""
        return self._call(api.get_adjustment(self.tenant_id, adjustment_id))

    def create_adjustment(
        self,
        *,
        metric: str,
        customer_ref: str | None = None,
        period_start: TimeLike | date,
        delta: Decimal | int | str,
        reason: api.AdjustmentReason | str,
        note: str | None = None,
    ) -> Resource:
        """Propose a correction of one counter; it counts once approved."""
        call = api.create_adjustment(
            self.tenant_id,
            metric=metric,
            customer_ref=self._ref(customer_ref),
            period_start=period_start,
            delta=delta,
            reason=reason,
            note=note,
        )
        return self._call(call)

    def approve_adjustment(self, adjustment_id: str, *, note: str | None = None) -> Resource:
        """Approve a pending adjustment (scope ``adjustments:approve``)."""
        return self._call(api.transition_adjustment(self.tenant_id, adjustment_id, "approve", note))

    def reject_adjustment(self, adjustment_id: str, *, note: str | None = None) -> Resource:
        """Reject a pending adjustment."""
        return self._call(api.transition_adjustment(self.tenant_id, adjustment_id, "reject", note))

    def revert_adjustment(self, adjustment_id: str, *, note: str | None = None) -> Resource:
        """Revert an approved adjustment (net effect zero)."""
        return self._call(api.transition_adjustment(self.tenant_id, adjustment_id, "revert", note))


def _close_at_exit(ref: weakref.ref[StripeMeterClient]) -> None:
    client = ref()
    if client is not None:
        client.close()
