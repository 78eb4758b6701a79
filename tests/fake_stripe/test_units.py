"""Pure parts of the fake: pricing, form decoding, persistence."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from stripemeter.stripe.fake.forms import decode_form
from stripemeter.stripe.fake.pricing import price_amount
from stripemeter.stripe.fake.state import FakeStripeState

TIERS = [{"up_to": 10, "unit_amount": 100, "flat_amount": 50}, {"up_to": None, "unit_amount": 10}]


@pytest.mark.parametrize(
    ("price", "quantity", "expected"),
    [
        ({"unit_amount_decimal": "0.5"}, "3", "1.5"),
        (
            {"unit_amount": 1000, "transform_quantity": {"divide_by": 100, "round": "up"}},
            "101",
            "2000",
        ),
        (
            {"unit_amount": 1000, "transform_quantity": {"divide_by": 100, "round": "down"}},
            "101",
            "1000",
        ),
        ({"billing_scheme": "tiered", "tiers_mode": "graduated", "tiers": TIERS}, "12", "1070"),
        ({"billing_scheme": "tiered", "tiers_mode": "volume", "tiers": TIERS}, "12", "120"),
        ({"billing_scheme": "tiered", "tiers_mode": "volume", "tiers": TIERS}, "10", "1050"),
        ({"unit_amount": 100}, "-4", "0"),
    ],
)
def test_price_amount(price: dict[str, object], quantity: str, expected: str) -> None:
    """Per-unit, package and tiered prices give Stripe's amounts; negative totals bill zero."""
    assert price_amount(price, Decimal(quantity)) == Decimal(expected)


def test_decode_form_brackets_and_lists() -> None:
    """Bracket keys nest, and indexed keys become lists."""
    decoded = decode_form(b"payload[value]=5&items[0][price]=p1&items[1][price]=p2&expand[]=a")
    assert decoded == {
        "payload": {"value": "5"},
        "items": [{"price": "p1"}, {"price": "p2"}],
        "expand": ["a"],
    }


def test_state_round_trips_through_a_file(tmp_path: Path) -> None:
    """A saved state loads back equal; a missing file loads empty."""
    state = FakeStripeState()
    state.put("customers", {"id": "cus_1", "livemode": False, "created": 1})
    state.settings.finalize_delay = 60
    target = tmp_path / "fake.json"
    state.save(target)
    loaded = FakeStripeState.load(target)
    assert loaded.to_json() == state.to_json()
    assert FakeStripeState.load(tmp_path / "absent.json").to_json() == FakeStripeState().to_json()
