"""The scenario format of the invoice simulator: read YAML or JSON into a checked ``Scenario``.

A scenario names a billing period, Stripe prices per metric, customers (credits, commitments, tax),
usage events with times (duplicates and late arrivals included, in arrival order) and what the
invoices and the ingest outcome should be. Stripe prices are in the currency's minor units, exactly
as Stripe's API writes them; every other amount (credits, commitments, minimum and maximum charges,
expected invoices) is in major units. See docs/pricing.md, "Simulation scenarios".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from stripemeter.domain.aggregation import Aggregation
from stripemeter.domain.errors import InvalidInput
from stripemeter.domain.periods import Period, month_from_label
from stripemeter.domain.pricing import (
    ChargeLimits,
    Commitment,
    Credit,
    Currency,
    ExpectedInvoice,
    Price,
    PricingError,
    Tolerances,
    currency,
    expected_invoice_from_dict,
    price_from_stripe,
    to_minor_units,
    tolerances_from_dict,
)
from stripemeter.domain.quantities import QuantityError, parse_quantity
from stripemeter.domain.times import TimeError, parse_event_time

MAX_SCENARIO_EVENTS = 20_000  # events after repeats; a scenario is a test, not a backfill
INGEST_STATUSES = ("accepted", "duplicate", "conflict", "held", "rejected")
TOP_LEVEL = frozenset(
    {"name", "description", "version", "tags", "period", "currency", "taxRate", "prices",
     "limits", "metrics", "customers", "events", "expected", "tolerances", "whatIf", "active"}
)  # fmt: skip


def invalid(message: str, param: str) -> InvalidInput:
    """The error for a scenario field."""
    return InvalidInput(message, code="invalid_scenario", param=param)


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """How the scenario's scratch tenant counts a metric."""

    aggregation: Aggregation = Aggregation.SUM
    lateness_window: timedelta | None = None  # None: the server's default


@dataclass(frozen=True, slots=True)
class CustomerSpec:
    """A customer's invoice adjustments."""

    ref: str
    tax_rate: Decimal
    credits: tuple[Credit, ...] = ()
    commitments: tuple[Commitment, ...] = ()


@dataclass(frozen=True, slots=True)
class Scenario:
    """A checked scenario, and the document it was read from (for storage and snapshots)."""

    name: str
    description: str
    version: str
    tags: tuple[str, ...]
    period: Period
    currency: Currency
    prices: dict[str, Price]
    limits: dict[str, ChargeLimits]
    metrics: dict[str, MetricSpec]
    customers: dict[str, CustomerSpec]
    events: tuple[dict[str, Any], ...]  # wire events, in arrival order, repeats expanded
    expected_ingest: dict[str, int] | None
    expected: dict[str, ExpectedInvoice]
    tolerances: Tolerances
    what_if: dict[str, Price] | None
    document: dict[str, Any] = field(repr=False, default_factory=dict)


class _Loader(yaml.SafeLoader):
    """YAML with exact numbers (floats become Decimal) and times kept as the text written."""


def _decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a finite number", node.start_mark
        ) from None
    if not value.is_finite():
        raise yaml.constructor.ConstructorError(
            None, None, f"{text!r} is not a finite number", node.start_mark
        )
    return value


def _text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return str(loader.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:float", _decimal)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _text)


def load_document(text: str, *, format: str = "yaml") -> dict[str, Any]:
    """Parse scenario text (``yaml`` or ``json``) into a dict with exact numbers."""
    try:
        data = (
            json.loads(text, parse_float=Decimal)
            if format == "json"
            else yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
        )
    except (yaml.YAMLError, ValueError) as exc:
        raise InvalidInput(f"the scenario is not valid {format.upper()}: {exc}",
                           code="invalid_scenario") from None  # fmt: skip
    if not isinstance(data, dict):
        raise InvalidInput("a scenario must be an object", code="invalid_scenario")
    return data


def load_file(path: Path) -> Scenario:
    """Read and check a ``.yaml``/``.yml``/``.json`` scenario file."""
    fmt = "json" if path.suffix.lower() == ".json" else "yaml"
    document = load_document(path.read_text(encoding="utf-8"), format=fmt)
    document.setdefault("name", path.name.split(".")[0])
    return parse_scenario(document)


def parse_scenario(document: Mapping[str, Any]) -> Scenario:
    """Check a scenario document; an error names the offending field."""
    if not isinstance(document, Mapping):
        raise invalid("a scenario must be an object", "scenario")
    unknown = sorted(set(document) - TOP_LEVEL)
    if unknown:
        raise invalid(f"unknown field {unknown[0]!r}", unknown[0])
    name = document.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= 255:
        raise invalid("name must be a string of 1 to 255 characters", "name")
    period_label = document.get("period")
    if not isinstance(period_label, str):
        raise invalid("period is required, written YYYY-MM", "period")
    try:
        period = month_from_label(period_label)
    except ValueError as exc:
        raise invalid(f"period {exc}", "period") from None
    cur = _currency(document.get("currency", "usd"))
    prices = _prices(_mapping(document.get("prices"), "prices", required=True), cur, "prices")
    if not prices:
        raise invalid("prices must name at least one metric", "prices")
    limits = {
        metric: read_limits(value, cur, f"limits.{metric}")
        for metric, value in _mapping(document.get("limits"), "limits").items()
    }
    for metric in limits:
        if metric not in prices:
            raise invalid(f"limits.{metric}: the metric has no price", f"limits.{metric}")
    metrics = {
        metric: _metric(value, f"metrics.{metric}")
        for metric, value in _mapping(document.get("metrics"), "metrics").items()
    }
    default_tax = _tax(document.get("taxRate"), "taxRate")
    customers = {
        ref: _customer(ref, value, cur, default_tax, f"customers.{ref}")
        for ref, value in _mapping(document.get("customers"), "customers").items()
    }
    events = _events(document.get("events"), prices)
    for event in events:
        ref = event["customerRef"]
        if ref not in customers:
            customers[ref] = CustomerSpec(ref, default_tax)
    expected_block = _mapping(document.get("expected"), "expected")
    unknown = sorted(set(expected_block) - {"ingest", "invoices"})
    if unknown:
        raise invalid(f"unknown field {unknown[0]!r}", f"expected.{unknown[0]}")
    expected = {}
    for ref, value in _mapping(expected_block.get("invoices"), "expected.invoices").items():
        if ref not in customers:
            raise invalid(f"expected.invoices.{ref}: no such customer", f"expected.invoices.{ref}")
        try:
            expected[ref] = expected_invoice_from_dict(value)
        except PricingError as exc:
            raise invalid(
                f"expected.invoices.{ref}: {exc.message}", f"expected.invoices.{ref}"
            ) from None
    tags = document.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise invalid("tags must be a list of strings", "tags")
    try:
        tolerances = tolerances_from_dict(document.get("tolerances"))
    except PricingError as exc:
        raise invalid(exc.message, exc.param or "tolerances") from None
    what_if_block = document.get("whatIf")
    what_if = None
    if what_if_block is not None:
        block = _mapping(what_if_block, "whatIf")
        if set(block) - {"prices"}:
            raise invalid("whatIf holds only prices", "whatIf")
        what_if = _prices(_mapping(block.get("prices"), "whatIf.prices", required=True), cur,
                          "whatIf.prices")  # fmt: skip
        for metric in what_if:
            if metric not in prices:
                raise invalid(f"whatIf.prices.{metric}: the metric has no current price",
                              f"whatIf.prices.{metric}")  # fmt: skip
    return Scenario(
        name=name,
        description=str(document.get("description") or ""),
        version=str(document.get("version") or "1"),
        tags=tuple(tags),
        period=period,
        currency=cur,
        prices=prices,
        limits=limits,
        metrics=metrics,
        customers=customers,
        events=events,
        expected_ingest=_expected_ingest(expected_block.get("ingest")),
        expected=expected,
        tolerances=tolerances,
        what_if=what_if,
        document=dict(document),
    )


def _mapping(value: object, param: str, *, required: bool = False) -> dict[str, Any]:
    if value is None:
        if required:
            raise invalid(f"{param} is required", param)
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise invalid(f"{param} must be an object keyed by name", param)
    return dict(value)


def _currency(value: object) -> Currency:
    try:
        return currency(value)  # type: ignore[arg-type]
    except PricingError as exc:
        raise invalid(exc.message, "currency") from None


def _prices(block: dict[str, Any], cur: Currency, param: str) -> dict[str, Price]:
    prices = {}
    for metric, obj in block.items():
        path = f"{param}.{metric}"
        if isinstance(obj, Mapping) and "currency" not in obj:
            obj = {**obj, "currency": cur.code}
        try:
            price = price_from_stripe(obj)
        except PricingError as exc:
            where = f"{path}.{exc.param}" if exc.param else path
            raise invalid(f"{where}: {exc.message}", where) from None
        if price.currency != cur:
            raise invalid(
                f"{path} is in {price.currency.code.upper()}, the scenario in {cur.code.upper()}",
                f"{path}.currency",
            )
        prices[metric] = price
    return prices


def _major(value: object, cur: Currency, param: str) -> int:
    try:
        minor = to_minor_units(parse_quantity(value), cur)
    except QuantityError as exc:
        raise invalid(f"{param} {exc}", param) from None
    if minor < 0 or minor != minor.to_integral_value():
        raise invalid(
            f"{param} must be a non-negative amount in whole {cur.code.upper()} minor units", param
        )
    return int(minor)


def read_limits(value: object, cur: Currency, param: str) -> ChargeLimits:
    """``{minimum, maximum}`` in major units as line limits in minor units."""
    block = _mapping(value, param)
    if set(block) - {"minimum", "maximum"}:
        raise invalid(f"{param} holds minimum and maximum only", param)
    low = block.get("minimum")
    high = block.get("maximum")
    try:
        return ChargeLimits(
            None if low is None else _major(low, cur, f"{param}.minimum"),
            None if high is None else _major(high, cur, f"{param}.maximum"),
        )
    except PricingError as exc:
        raise invalid(exc.message, param) from None


def _metric(value: object, param: str) -> MetricSpec:
    block = _mapping(value, param)
    if set(block) - {"aggregation", "latenessWindowSeconds"}:
        raise invalid(f"{param} holds aggregation and latenessWindowSeconds only", param)
    try:
        aggregation = Aggregation(block.get("aggregation", "sum"))
    except ValueError:
        raise invalid(f"{param}.aggregation must be sum, max, last or count",
                      f"{param}.aggregation") from None  # fmt: skip
    window = block.get("latenessWindowSeconds")
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, int) or window < 0
    ):
        raise invalid(f"{param}.latenessWindowSeconds must be a whole number of seconds",
                      f"{param}.latenessWindowSeconds")  # fmt: skip
    return MetricSpec(aggregation, None if window is None else timedelta(seconds=window))


def _tax(value: object, param: str) -> Decimal:
    if value is None:
        return Decimal(0)
    try:
        rate = parse_quantity(value)
    except QuantityError as exc:
        raise invalid(f"{param} {exc}", param) from None
    if not 0 <= rate <= 100:
        raise invalid(f"{param} must be a percentage from 0 to 100", param)
    return rate


def _instant(value: object, param: str) -> Any:
    if isinstance(value, str) and len(value) == 10:
        value = f"{value}T00:00:00Z"
    try:
        return parse_event_time(value).at
    except TimeError as exc:
        raise invalid(f"{param} {exc}", param) from None


def _customer(ref: str, value: object, cur: Currency, tax: Decimal, param: str) -> CustomerSpec:
    block = _mapping(value, param)
    if set(block) - {"taxRate", "credits", "commitments"}:
        raise invalid(f"{param} holds taxRate, credits and commitments only", param)
    credits = []
    for index, item in enumerate(block.get("credits") or []):
        path = f"{param}.credits[{index}]"
        entry = _mapping(item, path)
        expires = entry.get("expiresAt")
        credits.append(
            Credit(
                _major(entry.get("amount"), cur, f"{path}.amount"),
                str(entry.get("reason") or ""),
                None if expires is None else _instant(expires, f"{path}.expiresAt"),
            )
        )
    commitments = []
    for index, item in enumerate(block.get("commitments") or []):
        path = f"{param}.commitments[{index}]"
        entry = _mapping(item, path)
        start = _instant(entry.get("start"), f"{path}.start")
        end = _instant(entry.get("end"), f"{path}.end")
        if end <= start:
            raise invalid(f"{path}.end must be after start", f"{path}.end")
        commitments.append(
            Commitment(
                _major(entry.get("amount"), cur, f"{path}.amount"),
                Period(start, end),
                _major(entry.get("applied", 0), cur, f"{path}.applied"),
            )
        )
    rate = _tax(block["taxRate"], f"{param}.taxRate") if "taxRate" in block else tax
    return CustomerSpec(ref, rate, tuple(credits), tuple(commitments))


_EVENT_FIELDS = frozenset({"customer", "metric", "quantity", "at", "key", "repeat", "source"})


def _events(value: object, prices: dict[str, Price]) -> tuple[dict[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid("events must be a list", "events")
    wire: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        path = f"events[{index}]"
        entry = _mapping(item, path)
        unknown = sorted(set(entry) - _EVENT_FIELDS)
        if unknown:
            raise invalid(f"{path}: unknown field {unknown[0]!r}", f"{path}.{unknown[0]}")
        for name in ("customer", "metric", "at"):
            if not isinstance(entry.get(name), str) or not entry[name]:
                raise invalid(f"{path}.{name} is required", f"{path}.{name}")
        if entry["metric"] not in prices:
            raise invalid(f"{path}.metric {entry['metric']!r} has no price", f"{path}.metric")
        repeat = entry.get("repeat", 1)
        if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
            raise invalid(f"{path}.repeat must be a positive integer", f"{path}.repeat")
        event: dict[str, Any] = {
            "metric": entry["metric"],
            "customerRef": entry["customer"],
            "quantity": entry.get("quantity", 1),
            "ts": entry["at"],
        }
        if entry.get("key") is not None:
            event["idempotencyKey"] = str(entry["key"])
        if entry.get("source") is not None:
            event["source"] = entry["source"]
        wire.extend(dict(event) for _ in range(repeat))
        if len(wire) > MAX_SCENARIO_EVENTS:
            raise invalid(f"a scenario may hold at most {MAX_SCENARIO_EVENTS} events", "events")
    return tuple(wire)


def _expected_ingest(value: object) -> dict[str, int] | None:
    if value is None:
        return None
    block = _mapping(value, "expected.ingest")
    found = {}
    for status, count in block.items():
        if status not in INGEST_STATUSES:
            raise invalid(f"expected.ingest.{status}: one of {', '.join(INGEST_STATUSES)}",
                          f"expected.ingest.{status}")  # fmt: skip
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise invalid(f"expected.ingest.{status} must be a count", f"expected.ingest.{status}")
        found[status] = count
    return found
