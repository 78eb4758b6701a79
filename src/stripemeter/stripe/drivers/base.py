"""What every billing driver offers the pusher: send pushes, read Stripe's period total."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from stripe import RequestOptions

from stripemeter.domain.aggregation import Aggregation
from stripemeter.domain.periods import Period
from stripemeter.domain.pushes import ValueMode
from stripemeter.domain.quantities import canonical
from stripemeter.stripe.accounts import StripeAccount, connect_account
from stripemeter.stripe.errors import StripeCallError


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a mapping's pushes land in one account (live or shadow)."""

    stripe_account: str | None  # Connect account id, None for the key's own
    event_name: str | None = None  # meters
    meter_id: str | None = None  # meters: for summaries and payload keys
    subscription_item_id: str | None = None  # legacy


@dataclass(frozen=True, slots=True)
class WirePush:
    """One push as it goes out: who, how much, when, under which identifier."""

    identifier: str
    stripe_customer_id: str
    value: Decimal
    stamp: datetime
    destination: Destination


class Driver(ABC):
    """A way of telling Stripe about usage."""

    name: str = "base"
    #: Largest number of pushes one ``send`` call takes.
    batch_size: int = 1
    #: Legacy usage records take whole numbers only.
    whole_numbers: bool = False
    #: ``set`` semantics: every push of a row goes to the same timestamp.
    fixed_stamps: bool = False

    def value_mode(self, aggregation: Aggregation) -> ValueMode:
        """Deltas for sums and counts; the value itself for last and max."""
        if aggregation in (Aggregation.SUM, Aggregation.COUNT):
            return ValueMode.DELTA
        return ValueMode.ABSOLUTE

    def monotonic_stamps(self, aggregation: Aggregation) -> bool:
        """Whether successive pushes need increasing timestamps (``last`` meters pick the latest)."""
        return self.value_mode(aggregation) is ValueMode.ABSOLUTE

    @abstractmethod
    async def send(
        self, account: StripeAccount, pushes: Sequence[WirePush]
    ) -> list[StripeCallError | None]:
        """Send pushes; per push, None when Stripe accepted it, else the error.

        A whole-request failure (network, 429, 5xx) is raised rather than returned.
        """

    @abstractmethod
    async def period_total(
        self, account: StripeAccount, destination: Destination, customer: str, period: Period
    ) -> Decimal | None:
        """Stripe's own total for a customer and period (None when it cannot be read)."""

    async def latest_event_minute(
        self,
        account: StripeAccount,
        destination: Destination,
        customer: str,
        period: Period,
        value: Decimal,
    ) -> datetime | None:
        """The minute holding the period's latest event, whose value is ``value`` (None: unknown).

        Only meaningful for ``last`` meters; drivers without event timestamps return None.
        """
        return None


def options_for(destination: Destination, identifier: str | None = None) -> RequestOptions:
    """Request options: the Connect account and the Idempotency-Key."""
    options: RequestOptions = {}
    account = connect_account(destination.stripe_account)
    if account:
        options["stripe_account"] = account
    if identifier:
        options["idempotency_key"] = identifier
    return options


def wire_decimal(value: Decimal) -> str:
    """A decimal as Stripe's payload wants it: plain digits, no exponent."""
    return canonical(value)


def unix(at: datetime) -> int:
    """Whole Unix seconds."""
    return int(at.timestamp())
