"""``AsyncStripeMeterClient``: the asyncio client, with a background flush task."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
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
from stripemeter.client._spool import MemoryQueue, open_store
from stripemeter.client._types import QuantityLike, SpoolSetting, TimeLike

T = TypeVar("T")
LOCK_POLL_INTERVAL = 0.05  # seconds between tries of another process's spool lock


class AsyncStripeMeterClient(BaseClient):
    """The asyncio twin of ``StripeMeterClient``: the same arguments, ``await``-able methods.

    A background task sends tracked events in batches; spool reads and writes run in a worker
    thread so the event loop never waits on the disk. Use ``async with`` or ``await aclose()``:
    at interpreter exit the event loop is gone, so events not yet sent stay in the spool for the
    next client (and are lost when the spool is off, which is logged).
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
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
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
        self._http = httpx.AsyncClient(
            base_url=self.api_url,
            headers=self._headers(),
            timeout=self.timeout.to_httpx(),
            transport=transport,
        )
        self._store = open_store(self.spool_path)
        self._sleep = sleep or asyncio.sleep
        self._drain_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsent = 0
        self._closed = False
        self._leftover = self._store.count()  # events of an earlier process, sent on first use
        self._atexit_hook = functools.partial(_warn_at_exit, weakref.ref(self))
        atexit.register(self._atexit_hook)

    async def __aenter__(self) -> AsyncStripeMeterClient:
        self._start_task()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        """Whether ``aclose()`` was called."""
        return self._closed

    async def pending(self) -> int:
        """Events waiting to be answered by the server."""
        return await asyncio.to_thread(self._store.count)

    async def aclose(self) -> None:
        """Flush (retrying for at most ``close_budget`` seconds), stop the task, release files."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._atexit_hook)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self._drain(budget=self.close_budget, lock_wait=self.close_budget)
        except StripeMeterError as exc:
            self._report(exc)
        finally:
            left = await asyncio.to_thread(self._store.count)
            if left and self.spool_path is None:
                log.error("stripemeter: %d events were not delivered and are lost (no spool)", left)
            elif left:
                log.info(
                    "stripemeter: %d events stay in %s for the next client", left, self.spool_path
                )
            await asyncio.to_thread(self._store.close)
            await self._http.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("this client is closed")

    def _start_task(self) -> None:
        if self.flush_interval is None or self._task is not None or self._closed:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="stripemeter-flush")
        if self._leftover:
            self._leftover = 0
            self._wake.set()

    async def _run(self) -> None:
        interval = self.flush_interval
        assert interval is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            self._wake.clear()
            try:
                await self._drain(budget=None, lock_wait=0.0)
            except StripeMeterError as exc:
                self._report(exc)
                await asyncio.sleep(interval)  # a failing server is not hammered by wake-ups
            except Exception:  # the task must survive anything to keep the events flowing
                log.exception("stripemeter: unexpected error in the flush task")
                await asyncio.sleep(interval)

    # -- tracking ----------------------------------------------------------------------------

    async def track(
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
        """Record one usage event (its key is fixed now); it is sent in the background."""
        event = self._event(
            metric=metric,
            customer_ref=customer_ref,
            quantity=quantity,
            ts=ts,
            meta=meta,
            resource_id=resource_id,
            idempotency_key=idempotency_key,
        )
        await self._enqueue([event])
        return event

    async def track_many(self, events: Sequence[Event | Mapping[str, Any]]) -> list[Event]:
        """Record several events at once (dicts take ``track``'s argument names)."""
        built = self._events(events)
        await self._enqueue(built)
        return built

    async def _enqueue(self, events: list[Event]) -> None:
        self._check_open()
        if not events:
            return
        if isinstance(self._store, MemoryQueue):
            self._store.put(events)
        else:
            await asyncio.to_thread(self._store.put, events)  # durable before anything is sent
        self._start_task()
        self._unsent += len(events)
        if self._unsent >= self.batch_size:
            self._unsent = 0
            if self._task is not None:
                self._wake.set()
            else:
                try:
                    await self._drain(budget=0.0, lock_wait=0.0)
                except StripeMeterError as exc:
                    self._report(exc)

    async def flush(self) -> IngestResult:
        """Send every waiting event now; raises like ``StripeMeterClient.flush``."""
        self._check_open()
        self._unsent = 0
        return await self._drain(budget=None, lock_wait=None, raise_rejections=True)

    async def ingest(self, events: Sequence[Event | Mapping[str, Any]]) -> IngestResult:
        """Send events now, bypassing the queue and the spool; return the server's answer."""
        self._check_open()
        built = self._events(events)
        if not built:
            return IngestResult()
        response = await self._send_ingest(built, budget=None)
        if response.status_code != 200:
            body = decode_json(response)
            results: tuple[EventResult, ...] = ()
            if isinstance(body, Mapping) and isinstance(body.get("results"), list):
                results = IngestResult.from_json(body).results
            raise error_from_response(response, results=results)
        return IngestResult.from_json(decode_json(response))

    async def ingest_wire(self, events: Sequence[Mapping[str, Any]]) -> IngestResult:
        """Send events already in wire form as they are; see ``StripeMeterClient.ingest_wire``."""
        self._check_open()
        if not events:
            return IngestResult()
        request = self._http.build_request(
            "POST",
            "/v1/events/ingest",
            content=self._wire_ingest_content(events),
            headers={"Content-Type": "application/json"},
        )
        return ingest_answer(await self._send(request, self.retry))

    # -- sending -----------------------------------------------------------------------------

    async def _drain(
        self, *, budget: float | None, lock_wait: float | None, raise_rejections: bool = False
    ) -> IngestResult:
        total = IngestResult()
        rejected: list[tuple[EventResult, Event]] = []
        async with self._drain_lock:
            if not await self._lock_store(lock_wait):
                return total
            try:
                while True:
                    batch = await asyncio.to_thread(self._store.peek, self.batch_size)
                    if not batch:
                        break
                    response = await self._send_ingest([s.event for s in batch], budget)
                    outcome = interpret_ingest(batch, response)
                    await asyncio.to_thread(self._store.remove, outcome.answered)
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

    async def _lock_store(self, wait: float | None) -> bool:
        deadline = None if wait is None else time.monotonic() + wait
        while not self._store.try_lock():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(LOCK_POLL_INTERVAL)
        return True

    async def _send_ingest(self, events: Sequence[Event], budget: float | None) -> httpx.Response:
        request = self._http.build_request(
            "POST",
            "/v1/events/ingest",
            content=self._ingest_content(events),
            headers={"Content-Type": "application/json"},
        )
        return await self._send(request, self.retry, budget=budget)

    async def _send(
        self, request: httpx.Request, retry: Retry | None, *, budget: float | None = None
    ) -> httpx.Response:
        """Send with retries (the pure ``retry_flow`` decides); the last answer, or raise."""
        flow = retry_flow(retry, random=self._random, budget=budget)
        step = next(flow)
        response: httpx.Response | None = None
        try:
            while True:
                if isinstance(step, Wait):
                    await self._sleep(step.seconds)
                    step = flow.send(None)
                    continue
                outcome: Outcome
                try:
                    response = await self._http.send(request)
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

    async def _call(
        self,
        call: api.Call[T],
        *,
        timeout: TimeoutSetting | UseClientDefault = USE_CLIENT_DEFAULT,  # noqa: ASYNC109 - a per-request httpx timeout, as in httpx.AsyncClient
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
        response = await self._send(request, self._request_retry(retry))
        if response.status_code >= 400:
            raise error_from_response(response)
        return call.parse(decode_json(response))

    def _ref(self, customer_ref: str | None) -> str:
        ref = customer_ref if customer_ref is not None else self.customer_id
        if ref is None:
            raise ValueError("customer_ref is required (or set customer_id on the client)")
        return ref

    # -- usage -------------------------------------------------------------------------------

    async def get_usage(
        self,
        customer_ref: str | None = None,
        *,
        period: str | None = None,
        timeout: TimeoutSetting | UseClientDefault = USE_CLIENT_DEFAULT,  # noqa: ASYNC109 - a per-request httpx timeout, as in httpx.AsyncClient
        retry: Retry | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Usage:
        """The customer's usage per metric in the current billing period (or ``period``, YYYY-MM)."""
        call = api.get_usage(self.tenant_id, self._ref(customer_ref), period)
        return await self._call(call, timeout=timeout, retry=retry)

    async def get_usage_history(
        self,
        customer_ref: str | None = None,
        *,
        metric: str,
        period_start: TimeLike | date | None = None,
        period_end: TimeLike | date | None = None,
        interval: api.Interval | None = None,
        timeout: TimeoutSetting | UseClientDefault = USE_CLIENT_DEFAULT,  # noqa: ASYNC109 - a per-request httpx timeout, as in httpx.AsyncClient
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
        return await self._call(call, timeout=timeout)

    async def check_entitlement(
        self,
        customer_ref: str | None = None,
        metric: str | None = None,
        *,
        timeout: TimeoutSetting | UseClientDefault = USE_CLIENT_DEFAULT,  # noqa: ASYNC109 - a per-request httpx timeout, as in httpx.AsyncClient
        retry: Retry | UseClientDefault | None = USE_CLIENT_DEFAULT,
    ) -> Entitlement:
        """Whether the customer may use more of ``metric`` now (false once a hard cap is reached).

        Call it before starting work the customer would be billed for; the answer is truthy when
        allowed and carries the current value, the cap and what remains.
        """
        if not metric:
            raise ValueError("metric is required")
        call = api.check_entitlement(self.tenant_id, self._ref(customer_ref), metric)
        return await self._call(call, timeout=timeout, retry=retry)

    async def get_projection(
        self,
        customer_ref: str | None = None,
        *,
        period: str | None = None,
        period_start: TimeLike | date | None = None,
        period_end: TimeLike | date | None = None,
        timeout: TimeoutSetting | UseClientDefault = USE_CLIENT_DEFAULT,  # noqa: ASYNC109 - a per-request httpx timeout, as in httpx.AsyncClient
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
        return await self._call(call, timeout=timeout)

    async def list_events(
        self,
        customer_ref: str | None = None,
        *,
        metric: str | None = None,
        status: str | None = None,
        source: str | None = None,
        start_time: TimeLike | None = None,
        end_time: TimeLike | None = None,
        page_size: int = api.DEFAULT_PAGE_SIZE,
    ) -> AsyncIterator[EventRecord]:
        """Stored events, fetched page by page as you iterate (``async for``)."""
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
            page = await self._call(api.list_events_page(self.tenant_id, params))
            for event in page.events:
                yield event
            params = page.next_params

    # -- price mappings ----------------------------------------------------------------------

    async def list_mappings(
        self, *, active: bool | None = None, metric: str | None = None
    ) -> list[Resource]:
        """The tenant's price mappings."""
        call = api.list_mappings(self.tenant_id, active=active, metric=metric)
        found: tuple[Resource, ...] = await self._call(call)
        return list(found)

    async def get_mapping(self, mapping_id: str) -> Resource:
        """One price mapping."""
        return await self._call(api.get_mapping(self.tenant_id, mapping_id))

    async def create_mapping(self, *, metric: str, **fields: Any) -> Resource:
        """Create a price mapping; keyword names are the wire fields in snake_case."""
        return await self._call(api.create_mapping(self.tenant_id, {"metric": metric, **fields}))

    async def update_mapping(self, mapping_id: str, **fields: Any) -> Resource:
        """Change some fields of a price mapping."""
        return await self._call(api.update_mapping(self.tenant_id, mapping_id, fields))

    async def delete_mapping(self, mapping_id: str) -> None:
        """Delete a price mapping."""
        await self._call(api.delete_mapping(self.tenant_id, mapping_id))

    # -- metric settings and prices ----------------------------------------------------------

    async def get_metric(self, metric: str) -> Resource:
        """A metric's settings (its defaults, with ``configured`` false, when never set)."""
        return await self._call(api.get_metric(self.tenant_id, metric))

    async def set_metric(
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
        return await self._call(api.set_metric(self.tenant_id, metric, fields))

    async def set_metric_price(
        self,
        metric: str,
        price: Mapping[str, Any],
        *,
        limits: Mapping[str, Decimal | int | str] | None = None,
    ) -> Resource:
        """Price a metric with a Stripe Price object (minor units); ``limits`` in major units."""
        return await self._call(api.set_metric_price(self.tenant_id, metric, price, limits))

    # -- customer mappings -------------------------------------------------------------------

    async def list_customers(self, *, page_size: int = 100) -> AsyncIterator[Resource]:
        """Every customer mapping, page by page as you iterate (``async for``)."""
        params: dict[str, Any] | None = {"limit": page_size}
        while params is not None:
            page = await self._call(api.list_customers_page(self.tenant_id, params))
            for customer in page.customers:
                yield customer
            params = page.next_params

    async def get_customer(self, customer_ref: str) -> Resource:
        """One customer mapping."""
        return await self._call(api.get_customer(self.tenant_id, customer_ref))

    async def set_customer(
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
        return await self._call(call)

    async def delete_customer(self, customer_ref: str) -> None:
        """Remove a customer mapping; its counters are reported as unmapped."""
        await self._call(api.delete_customer(self.tenant_id, customer_ref))

    async def import_customers(self, customers: Sequence[Mapping[str, Any]]) -> Resource:
        """Create or replace up to 1,000 customer mappings at once, all or nothing."""
        return await self._call(api.import_customers(self.tenant_id, customers))

    # -- reconciliation ----------------------------------------------------------------------

    async def get_reconciliation(self, period: str, *, customer_ref: str | None = None) -> Resource:
        """The reconciliation report of a period (``YYYY-MM``)."""
        call = api.get_reconciliation(self.tenant_id, period, customer_ref=customer_ref)
        return await self._call(call)

    async def get_reconciliation_summary(self, period_start: str, period_end: str) -> Resource:
        """Drift per metric and overall between two periods (``YYYY-MM``)."""
        call = api.get_reconciliation_summary(self.tenant_id, period_start, period_end)
        return await self._call(call)

    async def run_reconciliation(self, customer_ref: str | None = None) -> Resource:
        """Reconcile now (all customers, or one)."""
        return await self._call(api.run_reconciliation(self.tenant_id, customer_ref))

    async def apply_suggestion(self, suggestion_id: str) -> Resource:
        """Execute a suggested repair and re-verify."""
        return await self._call(api.apply_suggestion(self.tenant_id, suggestion_id))

    # -- adjustments -------------------------------------------------------------------------

    async def list_adjustments(
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
        found: tuple[Resource, ...] = await self._call(call)
        return list(found)

    async def get_adjustment(self, adjustment_id: str) -> Resource:
        """One adjustment."""
        return await self._call(api.get_adjustment(self.tenant_id, adjustment_id))

    async def create_adjustment(
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
        return await self._call(call)

    async def approve_adjustment(self, adjustment_id: str, *, note: str | None = None) -> Resource:
        """Approve a pending adjustment."""
        call = api.transition_adjustment(self.tenant_id, adjustment_id, "approve", note)
        return await self._call(call)

    async def reject_adjustment(self, adjustment_id: str, *, note: str | None = None) -> Resource:
        """Reject a pending adjustment."""
        call = api.transition_adjustment(self.tenant_id, adjustment_id, "reject", note)
        return await self._call(call)

    async def revert_adjustment(self, adjustment_id: str, *, note: str | None = None) -> Resource:
        """Revert an approved adjustment (net effect zero)."""
        call = api.transition_adjustment(self.tenant_id, adjustment_id, "revert", note)
        return await self._call(call)


def _warn_at_exit(ref: weakref.ref[AsyncStripeMeterClient]) -> None:
    client = ref()
    if client is None or client.closed:
        return
    left = client._store.count()
    if left and client.spool_path is None:
        log.error("stripemeter: %d events were never sent and are lost (client not closed)", left)
    elif left:
        log.warning("stripemeter: %d unsent events stay in %s", left, client.spool_path)
    client._store.close()
