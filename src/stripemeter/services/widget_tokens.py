"""Minting and checking the short-lived, read-only tokens of the customer usage widget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from stripemeter.domain import widget_tokens
from stripemeter.domain.widget_tokens import WidgetClaims
from stripemeter.services.app_secret import AppSecret

KEY_PURPOSE = "widget-token"


@dataclass(frozen=True, slots=True)
class MintedToken:
    """A token for one customer and when it stops working."""

    token: str
    customer_ref: str
    expires_at: datetime


class WidgetTokenService:
    """Signs tokens for a tenant's backend and verifies them for the widget pages."""

    def __init__(
        self, secret: AppSecret, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._secret = secret
        self._clock = clock

    async def mint(self, tenant_id: str, customer_ref: object, ttl_seconds: object) -> MintedToken:
        """A token letting the widget show ``customer_ref``'s usage in ``tenant_id``, read-only."""
        customer = widget_tokens.validate_customer_ref(customer_ref)
        ttl = widget_tokens.validate_ttl(ttl_seconds)
        now = self._clock()
        key = await self._secret.key(KEY_PURPOSE)
        token = widget_tokens.issue(key, tenant_id, customer, now, ttl)
        expires_at = datetime.fromtimestamp(int(now.timestamp()) + int(ttl.total_seconds()), UTC)
        return MintedToken(token, customer, expires_at)

    async def verify(self, token: str) -> WidgetClaims:
        """The claims of a genuine, unexpired token (TokenMalformed / TokenExpired otherwise)."""
        key = await self._secret.key(KEY_PURPOSE)
        return widget_tokens.verify(key, token, self._clock())
