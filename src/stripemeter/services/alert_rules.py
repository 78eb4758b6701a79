"""Alert rules: wire validation, storage, and the rule as the evaluator reads it."""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import RowMapping

from stripemeter.domain.alerts import HUNDRED, Policy, RuleType
from stripemeter.domain.errors import InvalidInput, NotFound
from stripemeter.domain.events import MAX_CUSTOMER_REF_LENGTH, MAX_METRIC_LENGTH
from stripemeter.domain.quantities import QuantityError, canonical, parse_quantity
from stripemeter.store import alerts as store
from stripemeter.store.database import Database

MAX_THRESHOLDS = 10
MAX_CHANNELS = 10
DEFAULT_HYSTERESIS_PERCENT = Decimal(5)
MAX_HYSTERESIS_PERCENT = Decimal(50)
DEFAULT_SPIKE_WINDOW = 3600  # seconds of recent usage a spike rule measures
DEFAULT_SPIKE_BASELINE = 86_400  # seconds before the window that set the baseline rate
MAX_SPIKE_SECONDS = 30 * 86_400
MAX_RENOTIFY_SECONDS = 30 * 86_400
CHANNEL_TYPES = ("webhook", "email", "slack", "log")
FIELDS = frozenset(
    {
        "name",
        "type",
        "metric",
        "customerRef",
        "thresholds",
        "percentOfLimit",
        "channels",
        "renotifyAfter",
        "enabled",
        "hysteresisPercent",
        "hardCap",
        "windowSeconds",
        "baselineSeconds",
        "measure",
    }
)
_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AlertRule:
    """A stored rule, as the evaluator and the channels use it."""

    id: str
    tenant_id: str
    name: str
    type: RuleType
    metric: str | None
    customer_ref: str | None
    thresholds: tuple[Decimal, ...]
    percent_of_limit: bool
    hysteresis_percent: Decimal
    channels: tuple[dict[str, Any], ...]
    renotify_after: timedelta | None
    hard_cap: bool
    params: dict[str, Any]
    enabled: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> AlertRule:
        """A row of ``alert_rules`` as a value."""
        renotify = row["renotify_after_seconds"]
        return cls(
            id=row["id"],
            tenant_id=row["tenant_id"],
            name=row["name"],
            type=RuleType(row["type"]),
            metric=row["metric"],
            customer_ref=row["customer_ref"],
            thresholds=tuple(Decimal(t) for t in row["thresholds"]),
            percent_of_limit=bool(row["percent_of_limit"]),
            hysteresis_percent=row["hysteresis_percent"],
            channels=tuple(dict(c) for c in row["channels"]),
            renotify_after=timedelta(seconds=renotify) if renotify is not None else None,
            hard_cap=bool(row["hard_cap"]),
            params=dict(row["params"] or {}),
            enabled=bool(row["enabled"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    def policy(self, thresholds: tuple[Decimal, ...]) -> Policy:
        """The decision policy with these (absolute) thresholds."""
        return Policy(thresholds, self.hysteresis_percent / HUNDRED, self.renotify_after)


def rule_to_wire(rule: AlertRule, *, revealed: dict[int, str] | None = None) -> dict[str, Any]:
    """A rule in wire names; webhook secrets are never echoed, except ``revealed`` ones."""
    channels = []
    for index, channel in enumerate(rule.channels):
        shown = {k: v for k, v in channel.items() if k != "secret"}
        if channel["type"] == "webhook":
            shown["hasSecret"] = bool(channel.get("secret"))
            if revealed and index in revealed:
                shown["secret"] = revealed[index]
        channels.append(shown)
    wire: dict[str, Any] = {
        "id": rule.id,
        "object": "alert_rule",
        "name": rule.name,
        "type": rule.type.value,
        "metric": rule.metric,
        "customerRef": rule.customer_ref,
        "thresholds": list(rule.thresholds),
        "percentOfLimit": rule.percent_of_limit,
        "hysteresisPercent": rule.hysteresis_percent,
        "channels": channels,
        "renotifyAfter": int(rule.renotify_after.total_seconds()) if rule.renotify_after else None,
        "hardCap": rule.hard_cap,
        "enabled": rule.enabled,
        "createdAt": rule.created_at,
        "updatedAt": rule.updated_at,
    }
    if rule.type is RuleType.SPIKE:
        wire["windowSeconds"] = rule.params.get("windowSeconds", DEFAULT_SPIKE_WINDOW)
        wire["baselineSeconds"] = rule.params.get("baselineSeconds", DEFAULT_SPIKE_BASELINE)
    if rule.type is RuleType.DRIFT:
        wire["measure"] = rule.params.get("measure", "abs")
    return wire


def _invalid(message: str, param: str, code: str = "invalid_parameter") -> InvalidInput:
    return InvalidInput(message, code=code, param=param)


def _text(body: dict[str, Any], name: str, maximum: int, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _invalid(f"{name} is required", name, "missing_parameter")
        return None
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{name} must be a non-empty string", name)
    if len(value) > maximum:
        raise _invalid(f"{name} must be at most {maximum} characters", name)
    return value


def _bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _invalid(f"{name} must be a boolean", name)
    return value


def _seconds(
    body: dict[str, Any], name: str, default: int | None, low: int, high: int
) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _invalid(f"{name} must be a whole number of seconds", name)
    if value != int(value) or not low <= int(value) <= high:
        raise _invalid(f"{name} must be a whole number of seconds from {low} to {high}", name)
    return int(value)


def _thresholds(body: dict[str, Any]) -> list[Decimal]:
    raw = body.get("thresholds")
    if not isinstance(raw, list) or not raw:
        raise _invalid("thresholds must be a non-empty list of numbers", "thresholds")
    if len(raw) > MAX_THRESHOLDS:
        raise _invalid(f"at most {MAX_THRESHOLDS} thresholds", "thresholds")
    found: set[Decimal] = set()
    for index, item in enumerate(raw):
        try:
            value = parse_quantity(item)
        except QuantityError as exc:
            raise _invalid(f"thresholds[{index}] {exc}", f"thresholds[{index}]") from None
        if value <= 0:
            raise _invalid(f"thresholds[{index}] must be greater than 0", f"thresholds[{index}]")
        found.add(value)
    return sorted(found)


def check_url(url: object, param: str, *, allow_private: bool) -> str:
    """An http(s) URL whose host is not a private, loopback or link-local literal (unless allowed).

    Host names are resolved and checked again at every delivery.
    """
    if not isinstance(url, str) or len(url) > 2000:
        raise _invalid(f"{param} must be an http(s) URL", param)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid(f"{param} must be an http(s) URL", param)
    if not allow_private:
        host = parts.hostname.lower()
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            raise _invalid(f"{param} points at a private host", param, "private_target")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return url
        if not address.is_global:
            raise _invalid(f"{param} points at a private address", param, "private_target")
    return url


def _channels(
    body: dict[str, Any], *, allow_private: bool
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    raw = body.get("channels", [])
    if not isinstance(raw, list):
        raise _invalid("channels must be a list", "channels")
    if len(raw) > MAX_CHANNELS:
        raise _invalid(f"at most {MAX_CHANNELS} channels", "channels")
    channels: list[dict[str, Any]] = []
    generated: dict[int, str] = {}
    for index, item in enumerate(raw):
        param = f"channels[{index}]"
        if not isinstance(item, dict) or item.get("type") not in CHANNEL_TYPES:
            raise _invalid(
                f"{param}.type must be one of {', '.join(CHANNEL_TYPES)}", f"{param}.type"
            )
        kind = item["type"]
        allowed = {"webhook": {"type", "url", "secret"}, "email": {"type", "to"},
                   "slack": {"type", "url"}, "log": {"type"}}[kind]  # fmt: skip
        unknown = sorted(set(item) - allowed)
        if unknown:
            raise _invalid(
                f"unknown field {unknown[0]!r}", f"{param}.{unknown[0]}", "unknown_field"
            )
        if kind in ("webhook", "slack"):
            url = check_url(item.get("url"), f"{param}.url", allow_private=allow_private)
            channel: dict[str, Any] = {"type": kind, "url": url}
            if kind == "webhook":
                secret = item.get("secret")
                if secret is None:
                    secret = generated[index] = "whsec_" + secrets.token_urlsafe(24)
                elif not isinstance(secret, str) or not 16 <= len(secret) <= 200:
                    raise _invalid(
                        f"{param}.secret must be 16 to 200 characters", f"{param}.secret"
                    )
                channel["secret"] = secret
        elif kind == "email":
            to = item.get("to")
            addresses = [to] if isinstance(to, str) else to
            if (
                not isinstance(addresses, list)
                or not 1 <= len(addresses) <= 20
                or not all(isinstance(a, str) and _EMAIL.match(a) for a in addresses)
            ):
                raise _invalid(
                    f"{param}.to must be an e-mail address or a list of them", f"{param}.to"
                )
            channel = {"type": "email", "to": addresses}
        else:
            channel = {"type": "log"}
        channels.append(channel)
    return channels, generated


def parse_rule(
    body: dict[str, Any], *, allow_private: bool
) -> tuple[dict[str, Any], dict[int, str]]:
    """Validate a complete wire rule into column values (and the webhook secrets generated)."""
    unknown = sorted(set(body) - FIELDS - {"tenantId", "id", "object", "createdAt", "updatedAt"})
    if unknown:
        raise _invalid(f"unknown field {unknown[0]!r}", unknown[0], "unknown_field")
    name = _text(body, "name", 200, required=True)
    try:
        kind = RuleType(str(body.get("type")))
    except ValueError:
        raise _invalid(
            f"type must be one of {', '.join(t.value for t in RuleType)}", "type"
        ) from None
    metric = _text(body, "metric", MAX_METRIC_LENGTH)
    customer = _text(body, "customerRef", MAX_CUSTOMER_REF_LENGTH)
    thresholds = _thresholds(body)
    percent = _bool(body, "percentOfLimit", False)
    hard_cap = _bool(body, "hardCap", False)
    if percent and kind is not RuleType.USAGE_THRESHOLD:
        raise _invalid("percentOfLimit applies to usage_threshold rules only", "percentOfLimit")
    if hard_cap and kind is not RuleType.USAGE_THRESHOLD:
        raise _invalid("hardCap applies to usage_threshold rules only", "hardCap")
    if (hard_cap or kind is RuleType.SPIKE) and metric is None:
        raise _invalid(
            "metric is required for spike rules and hard caps", "metric", "missing_parameter"
        )
    if kind in (RuleType.PUSH_FAILURE, RuleType.HELD_EVENTS) and percent:
        raise _invalid("percentOfLimit applies to usage_threshold rules only", "percentOfLimit")
    try:
        hysteresis = parse_quantity(body.get("hysteresisPercent", DEFAULT_HYSTERESIS_PERCENT))
    except QuantityError as exc:
        raise _invalid(f"hysteresisPercent {exc}", "hysteresisPercent") from None
    if not 0 <= hysteresis <= MAX_HYSTERESIS_PERCENT:
        raise _invalid(
            f"hysteresisPercent must be from 0 to {MAX_HYSTERESIS_PERCENT}", "hysteresisPercent"
        )
    params: dict[str, Any] = {}
    spike_only = ("windowSeconds", "baselineSeconds")
    if kind is RuleType.SPIKE:
        params["windowSeconds"] = _seconds(
            body, "windowSeconds", DEFAULT_SPIKE_WINDOW, 60, MAX_SPIKE_SECONDS
        )
        params["baselineSeconds"] = _seconds(
            body, "baselineSeconds", DEFAULT_SPIKE_BASELINE, 60, MAX_SPIKE_SECONDS
        )
    else:
        for name_ in spike_only:
            if body.get(name_) is not None:
                raise _invalid(f"{name_} applies to spike rules only", name_)
    if kind is RuleType.DRIFT:
        measure = body.get("measure", "abs")
        if measure not in ("abs", "pct"):
            raise _invalid("measure must be abs or pct", "measure")
        params["measure"] = measure
    elif body.get("measure") is not None:
        raise _invalid("measure applies to drift rules only", "measure")
    channels, generated = _channels(body, allow_private=allow_private)
    values = {
        "name": name,
        "type": kind.value,
        "metric": metric,
        "customer_ref": customer,
        "thresholds": [canonical(t) for t in thresholds],
        "percent_of_limit": percent,
        "hysteresis_percent": hysteresis,
        "channels": channels,
        "renotify_after_seconds": _seconds(body, "renotifyAfter", None, 1, MAX_RENOTIFY_SECONDS),
        "hard_cap": hard_cap,
        "params": params,
        "enabled": _bool(body, "enabled", True),
    }
    return values, generated


def merged_wire(rule: AlertRule, changes: dict[str, Any]) -> dict[str, Any]:
    """The rule's wire form with ``changes`` applied (stored secrets kept where not replaced)."""
    base = rule_to_wire(rule)
    base["channels"] = [dict(c) for c in rule.channels]
    for channel in base["channels"]:
        channel.pop("hasSecret", None)
    for name in ("id", "object", "createdAt", "updatedAt"):
        base.pop(name, None)
    base["thresholds"] = [canonical(t) for t in rule.thresholds]
    return base | changes


class AlertRules:
    """Creates, reads, changes and deletes a tenant's rules."""

    def __init__(
        self,
        db: Database,
        *,
        allow_private: bool = False,
        on_change: Callable[[str], None] | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._db = db
        self.allow_private = allow_private
        self._on_change = on_change
        self._clock = clock

    async def create(self, tenant_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store a new rule; the response shows a generated webhook secret once."""
        values, generated = parse_rule(body, allow_private=self.allow_private)
        now = self._clock()
        rule_id = "alr_" + secrets.token_hex(12)
        values |= {"id": rule_id, "tenant_id": tenant_id, "created_at": now, "updated_at": now}
        async with self._db.write() as conn:
            await store.insert_rule(conn, values)
            row = await store.get_rule(conn, tenant_id, rule_id)
        assert row is not None
        self._changed(tenant_id)
        return rule_to_wire(AlertRule.from_row(row), revealed=generated)

    async def get(self, tenant_id: str, rule_id: str) -> AlertRule:
        """One of the tenant's rules, or NotFound."""
        async with self._db.read() as conn:
            row = await store.get_rule(conn, tenant_id, rule_id)
        if row is None:
            raise NotFound(f"no alert rule {rule_id!r}", code="alert_rule_not_found")
        return AlertRule.from_row(row)

    async def list(self, tenant_id: str, *, enabled_only: bool = False) -> list[AlertRule]:
        """The tenant's rules, oldest first."""
        async with self._db.read() as conn:
            rows = await store.list_rules(conn, tenant_id, enabled_only=enabled_only)
        return [AlertRule.from_row(r) for r in rows]

    async def update(self, tenant_id: str, rule_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply the fields given (any of them, false and 0 included) and validate the result."""
        rule = await self.get(tenant_id, rule_id)
        values, generated = parse_rule(merged_wire(rule, changes), allow_private=self.allow_private)
        values["updated_at"] = self._clock()
        async with self._db.write() as conn:
            if not await store.update_rule(conn, tenant_id, rule_id, values):
                raise NotFound(f"no alert rule {rule_id!r}", code="alert_rule_not_found")
            row = await store.get_rule(conn, tenant_id, rule_id)
        assert row is not None
        self._changed(tenant_id)
        return rule_to_wire(AlertRule.from_row(row), revealed=generated)

    async def delete(self, tenant_id: str, rule_id: str) -> None:
        """Remove a rule and its states; its history stays."""
        async with self._db.write() as conn:
            if not await store.delete_rule(conn, tenant_id, rule_id):
                raise NotFound(f"no alert rule {rule_id!r}", code="alert_rule_not_found")
        self._changed(tenant_id)

    def _changed(self, tenant_id: str) -> None:
        if self._on_change is not None:
            self._on_change(tenant_id)
