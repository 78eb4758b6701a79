"""Authentication and scope checks as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from fastapi import Request

from stripemeter.api.deps import services_of
from stripemeter.domain.errors import Forbidden, Unauthorized
from stripemeter.domain.scopes import Scope, allows
from stripemeter.services.keys import KeyService, Principal


def presented_key(request: Request) -> str:
    """The key from ``Authorization: Bearer …`` or ``x-api-key``."""
    return key_from_headers(request.headers.get("authorization"), request.headers.get("x-api-key"))


def key_from_headers(authorization: str | None, api_key: str | None) -> str:
    """The key presented in these header values (``Authorization`` wins over ``x-api-key``)."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        raise Unauthorized("use 'Authorization: Bearer <key>'", code="invalid_authorization")
    if api_key:
        return api_key.strip()
    raise Unauthorized(
        "an API key is required (Authorization: Bearer <key>)", code="missing_api_key"
    )


async def authorize(keys: KeyService, presented: str, scope: Scope) -> Principal:
    """The principal behind a key that holds ``scope`` (the caller binds it to the log context)."""
    principal = await keys.authenticate(presented)
    if not allows(principal.scopes, scope):
        raise Forbidden(f"this API key lacks the {scope.value!r} scope", code="missing_scope")
    return principal


def check_tenant(principal: Principal, claimed: object, param: str = "tenantId") -> None:
    """A tenantId in a request, when present, must be the key's own tenant."""
    if claimed is not None and claimed != principal.tenant_id:
        raise Forbidden(
            "tenantId does not match the API key's tenant", code="tenant_mismatch", param=param
        )


def require(scope: Scope) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates the caller and demands ``scope``."""

    async def dependency(request: Request) -> Principal:
        principal = await authorize(services_of(request).keys, presented_key(request), scope)
        structlog.contextvars.bind_contextvars(tenant=principal.tenant_id, key_id=principal.key_id)
        check_tenant(principal, request.query_params.get("tenantId"))
        request.state.principal = principal
        return principal

    return dependency
