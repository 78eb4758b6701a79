"""The InvoiceSimulator on the original product's input shape and on typed requests."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from stripemeter.domain.pricing import (
    CurrencyMismatch,
    InvoiceSimulator,
    PerUnitPrice,
    PricingError,
    Tier,
    TieredPrice,
    TiersMode,
    currency,
    invoice_request_from_legacy,
    price_from_legacy,
)

D = Decimal


def seed_input(**overrides: Any) -> dict[str, Any]:
    """The seed README's example: 25,000 api_calls over three graduated tiers."""
    data: dict[str, Any] = {
        "customerId": "test",
        "periodStart": "2024-01-01",
        "periodEnd": "2024-02-01",
        "usageItems": [
            {
                "metric": "api_calls",
                "quantity": 25000,
                "priceConfig": {
                    "model": "tiered",
                    "currency": "USD",
                    "tiers": [
                        {"upTo": 10000, "unitPrice": 0.01},
                        {"upTo": 50000, "unitPrice": 0.008},
                        {"upTo": None, "unitPrice": 0.005},
                    ],
                },
            }
        ],
    }
    data.update(overrides)
    return data


def item(config: dict[str, Any], quantity: Any = 10, metric: str = "m") -> dict[str, Any]:
    return {"metric": metric, "quantity": quantity, "priceConfig": config}


class TestSeedExample:
    def test_twenty_five_thousand_api_calls_cost_220_dollars(self) -> None:
        """10,000 x $0.01 = $100 plus 15,000 x $0.008 = $120; the $0.005 tier is not reached."""
        invoice = InvoiceSimulator().simulate(seed_input())
        line = invoice.line("api_calls")
        assert [(p.index, p.quantity, p.amount) for p in line.priced.parts] == [
            (0, D(10000), D(10000)),  # 10,000 units x 1 cent
            (1, D(15000), D(12000)),  # 15,000 units x 0.8 cent
        ]
        assert invoice.total == 10000 + 12000 == 22000
        assert invoice.major(invoice.total) == D("220.00")
        assert invoice.currency.code == "usd"
        assert invoice.tax == 0

    def test_legacy_and_typed_requests_agree(self) -> None:
        """The same invoice comes from the dict and from Stripe-shaped prices."""
        legacy = InvoiceSimulator().simulate(seed_input())
        typed = InvoiceSimulator().simulate(invoice_request_from_legacy(seed_input()))
        assert legacy == typed
        price = typed.lines[0].priced
        assert price.exact_amount == 22000


class TestLegacyModels:
    def test_flat_model_is_a_per_unit_price(self) -> None:
        """``flat`` at $0.25 becomes a 25-cent per-unit price."""
        price, _ = price_from_legacy({"model": "flat", "currency": "usd", "unitPrice": 0.25})
        assert price == PerUnitPrice(currency("usd"), D(25))

    def test_package_model_rounds_up_by_default(self) -> None:
        """``package`` of 100 at $5: 250 units are 3 packages, $15."""
        config = {"model": "package", "currency": "usd", "unitPrice": 5, "packageSize": 100}
        invoice = InvoiceSimulator().simulate(seed_input(usageItems=[item(config, 250)]))
        assert invoice.total == 1500

    def test_package_model_may_round_down(self) -> None:
        """``round: down`` bills only full packages: 250 units are 2 packages, $10."""
        config = {"model": "package", "currency": "usd", "unitPrice": 5, "packageSize": 100,
                  "round": "down"}  # fmt: skip
        assert InvoiceSimulator().simulate(seed_input(usageItems=[item(config, 250)])).total == 1000

    def test_volume_model(self) -> None:
        """``volume``: 1,500 units at [100: $1, 1000: $0.80, inf: $0.60] are 1,500 x $0.60 = $900."""
        config = {"model": "volume", "currency": "usd", "tiers": [
            {"upTo": 100, "unitPrice": 1}, {"upTo": 1000, "unitPrice": 0.8},
            {"upTo": None, "unitPrice": 0.6}]}  # fmt: skip
        price, _ = price_from_legacy(config)
        assert isinstance(price, TieredPrice)
        assert price.tiers_mode is TiersMode.VOLUME
        assert (
            InvoiceSimulator().simulate(seed_input(usageItems=[item(config, 1500)])).total == 90000
        )

    def test_graduated_model_keeps_flat_fees(self) -> None:
        """``graduated`` flat prices become Stripe ``flat_amount`` in minor units."""
        price, _ = price_from_legacy({"model": "graduated", "currency": "usd", "tiers": [
            {"upTo": 100, "unitPrice": 0.5, "flatPrice": 10},
            {"upTo": None, "unitPrice": 0.2, "flatPrice": 100}]})  # fmt: skip
        assert price == TieredPrice(
            currency("usd"),
            TiersMode.GRADUATED,
            (Tier(100, D(50), 1000), Tier(None, D(20), 10000)),
        )

    def test_yen_prices_stay_in_whole_yen(self) -> None:
        """A JPY ``flat`` price of 3 yen is 3 minor units: 1,001 units cost 3,003 yen."""
        config = {"model": "flat", "currency": "JPY", "unitPrice": 3}
        invoice = InvoiceSimulator().simulate(seed_input(usageItems=[item(config, 1001)]))
        assert (invoice.currency.code, invoice.total, invoice.major(invoice.total)) == (
            "jpy",
            3003,
            D(3003),
        )

    def test_limits_commitments_credits_and_tax_in_legacy_shape(self) -> None:
        """$220 usage, minimum irrelevant, $50 commitment, $20 credit, 10 % tax: total $165."""
        data = seed_input(
            commitments=[{"amount": 50, "startDate": "2024-01-01", "endDate": "2024-12-31",
                          "applied": 0}],
            credits=[{"amount": 20, "reason": "promo", "expiresAt": "2024-06-01T00:00:00Z"},
                     {"amount": 99, "reason": "expired", "expiresAt": "2024-01-15"}],
            taxRate=10,
        )  # fmt: skip
        data["usageItems"][0]["priceConfig"]["minimumCharge"] = 100
        data["usageItems"][0]["priceConfig"]["maximumCharge"] = 0  # 0 meant "none" in the original
        invoice = InvoiceSimulator().simulate(data)
        # 22000 - 5000 - 2000 = 15000 taxable; 10 % is 1500; total 16500 cents.
        assert (invoice.subtotal, invoice.taxable, invoice.tax, invoice.total) == (
            22000,
            15000,
            1500,
            16500,
        )


class TestLegacyErrors:
    @pytest.mark.parametrize(
        ("config", "param"),
        [
            ({"model": "mystery", "currency": "usd"}, "usageItems[0].priceConfig.model"),
            ({"model": "tiered", "currency": "usd",
              "tiers": [{"upTo": 0, "unitPrice": 1}, {"upTo": None, "unitPrice": 1}]},
             "usageItems[0].priceConfig.tiers[0].upTo"),
            ({"model": "tiered", "currency": "usd", "tiers": [{"upTo": 10, "unitPrice": 1}]},
             "usageItems[0].priceConfig.tiers[0].upTo"),
            ({"model": "tiered", "currency": "usd",
              "tiers": [{"upTo": 10, "unitPrice": 1}, {"upTo": 5, "unitPrice": 1},
                        {"upTo": None, "unitPrice": 1}]},
             "usageItems[0].priceConfig.tiers[1].up_to"),
            ({"model": "flat", "currency": "usd"}, "usageItems[0].priceConfig.unitPrice"),
            ({"model": "flat", "currency": "usd", "unitPrice": 1, "minimumCharge": 0.001},
             "usageItems[0].priceConfig.minimumCharge"),
            ({"model": "package", "currency": "usd", "unitPrice": 1, "packageSize": 2.5},
             "usageItems[0].priceConfig.packageSize"),
            ({"model": "flat", "currency": "dollars", "unitPrice": 1},
             "usageItems[0].priceConfig.currency"),
        ],
    )  # fmt: skip
    def test_unsound_configs_are_refused_with_the_field(
        self, config: dict[str, Any], param: str
    ) -> None:
        """What the original priced silently (or wrongly) is refused, naming the field."""
        with pytest.raises(PricingError) as caught:
            InvoiceSimulator().simulate(seed_input(usageItems=[item(config)]))
        assert caught.value.param == param

    def test_mixed_currencies_are_refused(self) -> None:
        """Items priced in two currencies cannot share one invoice."""
        items = [
            item({"model": "flat", "currency": "usd", "unitPrice": 1}, metric="a"),
            item({"model": "flat", "currency": "eur", "unitPrice": 1}, metric="b"),
        ]
        with pytest.raises(CurrencyMismatch) as caught:
            InvoiceSimulator().simulate(seed_input(usageItems=items))
        assert caught.value.param == "usageItems[1].priceConfig.currency"

    @pytest.mark.parametrize(
        ("overrides", "param"),
        [
            ({"customerId": ""}, "customerId"),
            ({"periodStart": "January"}, "periodStart"),
            ({"usageItems": None}, "usageItems"),
            ({"taxRate": "ten"}, "taxRate"),
            ({"credits": [{"amount": -5}]}, "credits[0].amount"),
        ],
    )
    def test_bad_request_fields_are_named(self, overrides: dict[str, Any], param: str) -> None:
        """Errors in the request itself name the field."""
        with pytest.raises(PricingError) as caught:
            InvoiceSimulator().simulate(seed_input(**overrides))
        assert caught.value.param == param


class TestWhatIf:
    def test_same_usage_under_a_new_price(self) -> None:
        """Re-pricing api_calls at a flat 0.9 cent shows $225 against today's $220."""
        before, after = InvoiceSimulator().what_if(
            seed_input(), {"api_calls": PerUnitPrice(currency("usd"), D("0.9"))}
        )
        assert (before.total, after.total) == (22000, 22500)
