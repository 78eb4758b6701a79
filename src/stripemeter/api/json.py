"""JSON in and out with msgspec: exact decimals both ways, aware datetimes as RFC 3339."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from starlette.responses import Response

from stripemeter.domain.quantities import canonical
from stripemeter.domain.times import canonical_time

_decoder = msgspec.json.Decoder(float_hook=Decimal)


def _default(obj: Any) -> Any:
    if isinstance(obj, datetime):
        return canonical_time(obj.astimezone(UTC))
    raise TypeError(f"cannot encode {type(obj).__name__}")


_encoder = msgspec.json.Encoder(enc_hook=_default, decimal_format="number")


def decode(body: bytes) -> Any:
    """Parse JSON keeping every non-integer number as an exact Decimal."""
    return _decoder.decode(body)


def encode(value: Any) -> bytes:
    """Render a value; Decimals become exact JSON numbers, datetimes RFC 3339 UTC."""
    return _encoder.encode(_normalise(value))


def _normalise(value: Any) -> Any:
    # Decimals print without exponent or trailing zeros (5, not 5.000 or 5E+0).
    if isinstance(value, Decimal):
        return Decimal(canonical(value))
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    if isinstance(value, datetime):
        return canonical_time(value.astimezone(UTC))
    return value


class JSON(Response):
    """A JSON response rendered by msgspec."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode(content)
