"""Reading JSON request bodies the way every route here does: exact decimals, precise errors."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import Request

from stripemeter.api.auth import check_tenant
from stripemeter.api.json import decode
from stripemeter.domain.errors import InvalidInput
from stripemeter.services.keys import Principal


async def read_object(request: Request, principal: Principal) -> dict[str, Any]:
    """The body as a JSON object; a ``tenantId`` in it must be the key's."""
    body = await read_optional_object(request, principal)
    if body is None:
        raise InvalidInput("a JSON object body is required", code="invalid_body")
    return body


async def read_optional_object(request: Request, principal: Principal) -> dict[str, Any] | None:
    """Like ``read_object``, but an empty body is None."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        body = decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", code="invalid_body")
    check_tenant(principal, body.get("tenantId"))
    return body


def reject_unknown(body: dict[str, Any], allowed: set[str]) -> None:
    """Refuse fields a route does not know, naming the first one."""
    unknown = sorted(set(body) - allowed - {"tenantId"})
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}", code="unknown_field", param=unknown[0])


def actor_of(principal: Principal) -> str:
    """How the audit log names the caller."""
    return f"key:{principal.key_id}"
