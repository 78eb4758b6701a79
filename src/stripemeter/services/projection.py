"""Cost projection: a customer's usage and cost so far in a period, and where the period will end.

Per metric: the billing value so far (the metric's aggregation over its counter), its price from the
``PriceSource`` (or why there is none), the cost so far with the per-tier breakdown, and the
projected value and cost at the period end. Projection is a run rate: usage in the recent window
(``window``, default ``DEFAULT_WINDOW``, clipped to the period so far) per second, times the time left,
added to usage so far, for ``sum`` and ``count``; ``max`` and ``last`` are projected at their
current value (they do not accumulate). A past period projects to its actual value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import func, or_, select

from stripemeter.domain.aggregation import Aggregation
from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.events import MAX_CUSTOMER_REF_LENGTH
from stripemeter.domain.periods import BillingCycle, Period, period_for
from stripemeter.domain.pricing import (
    Credit,
    Currency,
    InvoiceRequest,
    UsageItem,
    currency,
    price_line,
    simulate_invoice,
    to_minor_units,
)
from stripemeter.domain.quantities import QuantityError, parse_quantity
from stripemeter.services.catalog import MetricCatalog
from stripemeter.services.invoice_views import major, tiers_view, unit_price
from stripemeter.services.prices import PriceLookup, PriceSource
from stripemeter.services.read_params import check_length, parse_instant, parse_period
from stripemeter.store import counters, cycles, usage_queries
from stripemeter.store.counters import state_from_row
from stripemeter.store.database import Database
from stripemeter.store.tables import push_log

DEFAULT_WINDOW = timedelta(days=7)  # the recent window the run rate is measured over
MAX_WINDOW = timedelta(days=366)
PROJECTED_PLACES = Decimal("0.000001")  # projected quantities are estimates: six decimals


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PeriodRequest:
    """A period as a request names it, resolved against the customer's billing cycle."""

    label: str | None = None  # YYYY-MM (the period starting in that month) or YYYY-MM-DD
    start: datetime | None = None
    end: datetime | None = None

    def resolve(self, cycle: BillingCycle | None) -> Period:
        """The customer's period, or a 400 when ``start``/``end`` are not its bounds."""
        if self.label is not None:
            return parse_period(self.label, cycle)
        assert self.start is not None
        period = period_for(self.start, cycle)
        if period.start != self.start:
            raise InvalidInput(
                f"periodStart must be the start of a billing period ({period.start.isoformat()})",
                code="invalid_period",
                param="periodStart",
            )
        if self.end is not None and self.end != period.end:
            raise InvalidInput(
                f"periodEnd must be the end of the period that starts at periodStart "
                f"({period.end.isoformat()}, exclusive)",
                code="invalid_period",
                param="periodEnd",
            )
        return period


@dataclass(frozen=True, slots=True)
class ProjectionQuery:
    """What to project: a customer, a period (default: the one containing now), the window, extras.

    ``period`` is a resolved period; ``requested`` one named by a request, resolved against the
    customer's billing cycle (its anchored periods, or calendar months).
    """

    customer_ref: str
    period: Period | None = None
    window: timedelta = DEFAULT_WINDOW
    tax_rate: Decimal = Decimal(0)
    credits: tuple[Mapping[str, Any], ...] = ()  # {amount (major units), reason?, expiresAt?}
    requested: PeriodRequest | None = None


@dataclass(frozen=True, slots=True)
class MetricProjection:
    """One metric: usage and cost so far and at the period end, or why it has no price."""

    metric: str
    aggregation: Aggregation
    unit: str
    quantity: Decimal
    projected_quantity: Decimal
    method: str
    lookup: PriceLookup
    unpriced_reason: str | None = None
    unpriced_message: str | None = None


class ProjectionService:
    """Projects a customer's invoice from counters, prices and the recent run rate."""

    def __init__(
        self,
        db: Database,
        catalog: MetricCatalog,
        prices: PriceSource,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._db = db
        self._catalog = catalog
        self._prices = prices
        self.clock = clock

    async def project(self, tenant_id: str, query: ProjectionQuery) -> dict[str, Any]:
        """The projection as a response document (camelCase, exact decimals)."""
        now = self.clock()
        settings = await self._catalog.for_tenant(tenant_id)
        async with self._db.read() as conn:
            period = query.period
            if period is None:
                cycle = await cycles.cycle_of(conn, tenant_id, query.customer_ref)
                period = query.requested.resolve(cycle) if query.requested else None
                period = period or period_for(now, cycle)
            rows = await counters.for_customer(conn, tenant_id, query.customer_ref, period.start)
            pending = await _pending_pushes(conn, tenant_id, query.customer_ref, period.start)
        states = {row["metric"]: row for row in rows}
        metrics = sorted(set(states) | await self._prices.priced_metrics(tenant_id))
        window = _window(period, now, query.window)

        lines: list[MetricProjection] = []
        for metric in metrics:
            config = settings.get(metric)
            row = states.get(metric)
            so_far = (
                state_from_row(row).value(config.aggregation) if row is not None else Decimal(0)
            )
            projected, method = await self._projected(
                tenant_id,
                query.customer_ref,
                metric,
                config.aggregation,
                so_far,
                period,
                now,
                window,
            )
            lookup = await self._prices.price_for(tenant_id, metric)
            lines.append(
                MetricProjection(
                    metric, config.aggregation, config.unit, so_far, projected, method, lookup
                )
            )

        invoice_currency = next(
            (line.lookup.price.currency for line in lines if line.lookup.price is not None), None
        )
        lines = [_check_currency(line, invoice_currency) for line in lines]
        document: dict[str, Any] = {
            "customerRef": query.customer_ref,
            "periodStart": period.start,
            "periodEnd": period.end,
            "asOf": now,
            "currency": invoice_currency.code if invoice_currency else None,
            "projection": {
                "method": "run_rate",
                "description": (
                    "sum and count metrics: usage so far plus (usage in the window / window length) * "
                    "time left in the period; max and last metrics: their current value; a period "
                    "that has ended: its actual value"
                ),
                "windowSeconds": int(query.window.total_seconds()),
                "window": {"start": window[0], "end": window[1]} if window else None,
            },
        }
        priced = [line for line in lines if line.unpriced_reason is None]
        document["lineItems"] = [self._line_view(line, invoice_currency) for line in lines]
        document["unpricedMetrics"] = [
            line.metric for line in lines if line.unpriced_reason is not None
        ]
        document["complete"] = not document["unpricedMetrics"]
        if invoice_currency is None:
            zero = Decimal(0)
            document |= {"subtotal": zero, "credits": zero, "tax": zero, "total": zero}
            document["projected"] = {"subtotal": zero, "credits": zero, "tax": zero, "total": zero}
        else:
            credits = _credits(query.credits, invoice_currency)
            document |= _invoice(query, period, priced, invoice_currency, credits, projected=False)
            document["projected"] = _invoice(
                query, period, priced, invoice_currency, credits, projected=True
            )
        last_update = max((row["updated_at"] for row in rows), default=None)
        document["freshness"] = {
            "lastUpdate": last_update,
            "stalenessSeconds": (
                max(0, int((now - last_update).total_seconds())) if last_update else None
            ),
            "pendingPushes": pending,
        }
        return document

    async def _projected(
        self,
        tenant_id: str,
        customer_ref: str,
        metric: str,
        aggregation: Aggregation,
        so_far: Decimal,
        period: Period,
        now: datetime,
        window: tuple[datetime, datetime] | None,
    ) -> tuple[Decimal, str]:
        if now >= period.end:
            return so_far, "actual"
        if now < period.start:
            return so_far, "not_started"
        if aggregation in (Aggregation.MAX, Aggregation.LAST):
            return so_far, "current_value"
        assert window is not None
        start, end = window
        seconds = Decimal((end - start).total_seconds())
        if seconds <= 0:
            return so_far, "run_rate"
        in_window = Decimal(0)
        async with self._db.read() as conn:
            async for item in usage_queries.stream_counted_events(
                conn, tenant_id, metric, customer_ref, start, end
            ):
                in_window += 1 if aggregation is Aggregation.COUNT else item.quantity
            for item in await usage_queries.approved_event_adjustments(
                conn, tenant_id, metric, customer_ref, start, end
            ):
                in_window += 0 if aggregation is Aggregation.COUNT else item.quantity
        left = Decimal((period.end - now).total_seconds())
        projected = so_far + in_window / seconds * left
        return projected.quantize(
            PROJECTED_PLACES, rounding=ROUND_HALF_UP
        ).normalize() + 0, "run_rate"

    def _line_view(self, line: MetricProjection, of: Currency | None) -> dict[str, Any]:
        view: dict[str, Any] = {
            "metric": line.metric,
            "aggregation": line.aggregation.value,
            "unit": line.unit,
            "quantity": line.quantity,
            "priced": line.unpriced_reason is None,
            "priceSource": line.lookup.source,
            "priceId": line.lookup.price_id,
        }
        if line.unpriced_reason is not None or line.lookup.price is None or of is None:
            view |= {
                "reason": line.unpriced_reason,
                "message": line.unpriced_message,
                "amount": None,
                "total": None,
                "unitPrice": None,
                "tiers": [],
                "projected": {"quantity": line.projected_quantity, "method": line.method,
                              "amount": None, "total": None, "tiers": []},
            }  # fmt: skip
            return view
        now_view = _priced(line, line.quantity, of)
        end_view = _priced(line, line.projected_quantity, of)
        view |= now_view
        view["projected"] = {"quantity": line.projected_quantity, "method": line.method} | end_view
        return view


def _priced(line: MetricProjection, quantity: Decimal, of: Currency) -> dict[str, Any]:
    assert line.lookup.price is not None
    priced = price_line(line.lookup.price, max(quantity, Decimal(0)))
    amount = line.lookup.limits.apply(priced.amount)
    return {
        "amount": amount,
        "total": major(amount, of),
        "unitPrice": unit_price(amount, quantity, of),
        "rounding": priced.rounding,
        "limitAdjustment": amount - priced.amount,
        "tiers": tiers_view(priced),
    }


def _check_currency(line: MetricProjection, of: Currency | None) -> MetricProjection:
    lookup = line.lookup
    if lookup.price is None:
        return _unpriced(line, lookup.reason or "no_price", lookup.message or "")
    if of is not None and lookup.price.currency != of:
        return _unpriced(
            line,
            "currency_mismatch",
            f"priced in {lookup.price.currency.code.upper()}, the invoice in {of.code.upper()}",
        )
    return line


def _unpriced(line: MetricProjection, reason: str, message: str) -> MetricProjection:
    return MetricProjection(
        line.metric, line.aggregation, line.unit, line.quantity, line.projected_quantity,
        line.method, line.lookup, reason, message,
    )  # fmt: skip


def _invoice(
    query: ProjectionQuery,
    period: Period,
    lines: Sequence[MetricProjection],
    of: Currency,
    credits: tuple[Credit, ...],
    *,
    projected: bool,
) -> dict[str, Any]:
    items = []
    for line in lines:
        assert line.lookup.price is not None
        quantity = line.projected_quantity if projected else line.quantity
        items.append(UsageItem(line.metric, quantity, line.lookup.price, line.lookup.limits))
    invoice = simulate_invoice(
        InvoiceRequest(
            customer_id=query.customer_ref,
            period=period,
            items=tuple(items),
            currency=of,
            credits=credits,
            tax_rate=query.tax_rate,
        )
    )
    return {
        "subtotal": major(invoice.subtotal, of),
        "credits": major(invoice.commitment_total + invoice.credit_total, of),
        "tax": major(invoice.tax, of),
        "total": major(invoice.total, of),
    }


def _credits(raw: tuple[Mapping[str, Any], ...], of: Currency) -> tuple[Credit, ...]:
    found = []
    for index, item in enumerate(raw):
        param = f"credits[{index}]"
        if not isinstance(item, Mapping):
            raise InvalidInput(f"{param} must be an object", code="invalid_parameter", param=param)
        try:
            amount = to_minor_units(parse_quantity(item.get("amount")), of)
        except QuantityError as exc:
            raise InvalidInput(f"{param}.amount {exc}", code="invalid_parameter",
                               param=f"{param}.amount") from None  # fmt: skip
        if amount < 0 or amount != amount.to_integral_value():
            raise InvalidInput(
                f"{param}.amount must be a non-negative amount in whole {of.code.upper()} minor units",
                code="invalid_parameter",
                param=f"{param}.amount",
            )
        expires = item.get("expiresAt")
        found.append(
            Credit(
                int(amount),
                str(item.get("reason") or ""),
                parse_instant(expires, f"{param}.expiresAt") if isinstance(expires, str) else None,
            )
        )
    return tuple(found)


def _window(period: Period, now: datetime, width: timedelta) -> tuple[datetime, datetime] | None:
    if not period.start <= now < period.end:
        return None
    return max(period.start, now - width), now


async def _pending_pushes(conn: Any, tenant_id: str, customer_ref: str, start: datetime) -> int:
    """Push-log rows of this customer and period not yet confirmed by Stripe (or changed since)."""
    query = select(func.count()).where(
        push_log.c.tenant_id == tenant_id,
        push_log.c.customer_ref == customer_ref,
        push_log.c.period_start == start,
        or_(push_log.c.status != "ok", push_log.c.dirty.is_(True)),
    )
    return int((await conn.execute(query)).scalar_one())


def parse_query(
    *,
    customer_ref: object,
    period: object = None,
    period_start: object = None,
    period_end: object = None,
    window_seconds: object = None,
    tax_rate: object = None,
    credits: object = None,
) -> ProjectionQuery:
    """Validate the wire parameters of a projection request."""
    if not isinstance(customer_ref, str):
        raise InvalidInput("customerRef is required", code="missing_parameter", param="customerRef")
    customer = check_length(customer_ref, "customerRef", MAX_CUSTOMER_REF_LENGTH)
    assert customer is not None
    resolved = _period(period, period_start, period_end)
    window = DEFAULT_WINDOW
    if window_seconds is not None:
        seconds = _number(window_seconds, "windowSeconds")
        if seconds != seconds.to_integral_value() or not 0 < seconds <= MAX_WINDOW.total_seconds():
            raise InvalidInput(
                f"windowSeconds must be a whole number of seconds from 1 to "
                f"{int(MAX_WINDOW.total_seconds())}",
                code="invalid_parameter",
                param="windowSeconds",
            )
        window = timedelta(seconds=int(seconds))
    rate = Decimal(0)
    if tax_rate is not None:
        rate = _number(tax_rate, "taxRate")
        if rate < 0 or rate > 100:
            raise InvalidInput("taxRate must be a percentage from 0 to 100",
                               code="invalid_parameter", param="taxRate")  # fmt: skip
    if credits is not None and not isinstance(credits, list):
        raise InvalidInput("credits must be a list", code="invalid_parameter", param="credits")
    return ProjectionQuery(customer, None, window, rate, tuple(credits or ()), resolved)


def _number(value: object, param: str) -> Decimal:
    try:
        return parse_quantity(value)
    except QuantityError as exc:
        raise InvalidInput(f"{param} {exc}", code="invalid_parameter", param=param) from None


def _period(label: object, start: object, end: object) -> PeriodRequest | None:
    if label is not None:
        if start is not None or end is not None:
            raise InvalidInput("give period or periodStart/periodEnd, not both",
                               code="invalid_parameter", param="period")  # fmt: skip
        if not isinstance(label, str):
            raise InvalidInput("period must be YYYY-MM", code="invalid_parameter", param="period")
        parse_period(label)  # malformed: 400 now; resolved against the customer's cycle later
        return PeriodRequest(label=label)
    if start is None:
        if end is not None:
            raise InvalidInput("periodEnd needs periodStart", code="missing_parameter",
                               param="periodStart")  # fmt: skip
        return None
    if not isinstance(start, str):
        raise InvalidInput("periodStart must be a date or an RFC 3339 time",
                           code="invalid_parameter", param="periodStart")  # fmt: skip
    begins = parse_instant(start, "periodStart")
    ends = None
    if end is not None:
        if not isinstance(end, str):
            raise InvalidInput("periodEnd must be a date or an RFC 3339 time",
                               code="invalid_parameter", param="periodEnd")  # fmt: skip
        ends = parse_instant(end, "periodEnd")
    return PeriodRequest(start=begins, end=ends)


__all__ = [
    "DEFAULT_WINDOW",
    "PeriodRequest",
    "ProjectionQuery",
    "ProjectionService",
    "currency",
    "parse_query",
]
