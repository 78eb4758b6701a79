"""Validation of one wire event into a UsageEvent or a precise Rejection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from stripemeter.domain.events import EventLimits, Rejection, Source, UsageEvent, parse_event

NOW = datetime(2025, 1, 20, 12, 0, tzinfo=UTC)
BASE: dict[str, Any] = {
    "metric": "api_calls",
    "customerRef": "cus_1",
    "quantity": 5,
    "ts": "2025-01-16T14:30:00Z",
}


def parse(raw: object, tenant: str = "acme") -> UsageEvent | Rejection:
    return parse_event(
        raw, tenant_id=tenant, now=NOW, limits=EventLimits(), default_source=Source.HTTP
    )


def valid(**changes: Any) -> UsageEvent:
    event = parse({**BASE, **changes})
    assert isinstance(event, UsageEvent), event
    return event


def rejected(**changes: Any) -> Rejection:
    result = parse({**BASE, **changes})
    assert isinstance(result, Rejection), result
    return result


class TestValidEvents:
    def test_a_minimal_event_is_accepted_with_defaults(self) -> None:
        """Only metric, customerRef, quantity and ts are needed; source defaults to the route's."""
        event = valid()
        assert event.quantity == Decimal(5)
        assert event.at == datetime(2025, 1, 16, 14, 30, tzinfo=UTC)
        assert event.source is Source.HTTP
        assert event.meta == {}

    def test_decimal_strings_and_numbers_are_exact(self) -> None:
        """Quantities keep every digit, whether sent as a number or a string."""
        assert valid(quantity="0.000000000001").quantity == Decimal("1E-12")
        assert valid(quantity=Decimal("12345678901234567890.5")).quantity == Decimal(
            "12345678901234567890.5"
        )

    def test_offsets_are_converted_to_utc(self) -> None:
        """A time with an offset names the same instant in UTC."""
        assert valid(ts="2025-01-16T16:30:00+02:00").at == datetime(2025, 1, 16, 14, 30, tzinfo=UTC)

    def test_a_negative_quantity_is_allowed_for_corrections(self) -> None:
        """Corrections may subtract."""
        assert valid(quantity=-3, source="correction").quantity == Decimal(-3)


class TestRejections:
    @pytest.mark.parametrize(
        ("changes", "field", "code"),
        [
            ({"metric": ""}, "metric", "blank"),
            ({"metric": "x" * 101}, "metric", "too_long"),
            ({"customerRef": None}, "customerRef", "required"),
            ({"customerRef": 7}, "customerRef", "invalid_type"),
            ({"quantity": "NaN"}, "quantity", "invalid_quantity"),
            ({"quantity": "Infinity"}, "quantity", "invalid_quantity"),
            ({"quantity": True}, "quantity", "invalid_quantity"),
            ({"quantity": "0.0000000000001"}, "quantity", "invalid_quantity"),
            ({"quantity": -1}, "quantity", "negative_quantity"),
            ({"ts": "2025-01-16 14:30:00"}, "ts", "invalid_timestamp"),
            ({"ts": "2025-01-16T14:30:00"}, "ts", "invalid_timestamp"),
            ({"ts": "2025-02-30T00:00:00Z"}, "ts", "invalid_timestamp"),
            ({"ts": "2025-01-20T12:05:01Z"}, "ts", "timestamp_in_future"),
            ({"meta": [1]}, "meta", "invalid_type"),
            ({"meta": {"k": "v" * 5000}}, "meta", "too_large"),
            ({"source": "api"}, "source", "invalid_enum"),
            ({"tenantId": "other"}, "tenantId", "tenant_mismatch"),
            ({"idempotencyKey": "k" * 256}, "idempotencyKey", "too_long"),
            ({"metric": "a\nb"}, "metric", "invalid_characters"),
            ({"customer_ref": "cus_1"}, "customer_ref", "unknown_field"),
        ],
    )
    def test_each_rule_names_its_field_and_code(
        self, changes: dict[str, Any], field: str, code: str
    ) -> None:
        """A broken rule is reported with the field and a stable code."""
        result = rejected(**changes)
        assert (result.field, result.code) == (field, code)

    def test_a_missing_quantity_is_required(self) -> None:
        """quantity has no default."""
        raw = dict(BASE)
        del raw["quantity"]
        result = parse(raw)
        assert isinstance(result, Rejection)
        assert (result.field, result.code) == ("quantity", "required")

    def test_a_non_object_is_rejected(self) -> None:
        """Each event must be an object."""
        result = parse([1, 2])
        assert isinstance(result, Rejection)
        assert result.code == "invalid_type"

    def test_five_minutes_ahead_is_still_accepted(self) -> None:
        """The future bound is inclusive of the configured skew."""
        assert valid(ts=(NOW + timedelta(minutes=5)).isoformat())


class TestIdempotencyKeys:
    def test_the_derived_key_covers_the_whole_event(self) -> None:
        """Two readings differing in any field get different keys."""
        base = valid().idempotency_key
        assert base.startswith("evt_")
        assert valid(quantity=6).idempotency_key != base
        assert valid(resourceId="r1").idempotency_key != base
        assert valid(meta={"a": 1}).idempotency_key != base
        assert valid(ts="2025-01-16T14:30:00.000001Z").idempotency_key != base
        assert valid(ts="2025-01-16T14:30:00.000000001Z").idempotency_key != base

    def test_the_derived_key_is_stable_across_spellings(self) -> None:
        """The same instant, number and meta in another spelling give the same key."""
        a = valid(ts="2025-01-16T14:30:00Z", quantity=5, meta={"a": 1, "b": 2})
        b = valid(ts="2025-01-16T15:30:00.000+01:00", quantity="5.000", meta={"b": 2, "a": 1})
        assert a.idempotency_key == b.idempotency_key
        assert a.payload_hash == b.payload_hash

    def test_keys_are_scoped_by_tenant(self) -> None:
        """The same event of two tenants gets two keys."""
        first = parse({**BASE}, tenant="a")
        second = parse({**BASE}, tenant="b")
        assert isinstance(first, UsageEvent)
        assert isinstance(second, UsageEvent)
        assert first.idempotency_key != second.idempotency_key

    def test_a_client_key_is_kept_and_the_payload_hash_still_differs(self) -> None:
        """A client's key is used as given; the payload hash tells a conflict from a duplicate."""
        one = valid(idempotencyKey="req-1")
        two = valid(idempotencyKey="req-1", quantity=9)
        assert one.idempotency_key == two.idempotency_key == "req-1"
        assert one.payload_hash != two.payload_hash
