"""Pure parts of the fake: form decoding, persistence (pricing: tests/pricing_api/test_fake_invoices.py)."""

from __future__ import annotations

from pathlib import Path

from stripemeter.stripe.fake.forms import decode_form
from stripemeter.stripe.fake.state import FakeStripeState


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
