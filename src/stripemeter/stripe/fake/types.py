"""Type aliases shared by the fake Stripe modules."""

from __future__ import annotations

from typing import Any, TypeAlias

#: A Stripe object or request body as decoded JSON.
JSONObject: TypeAlias = dict[str, Any]
