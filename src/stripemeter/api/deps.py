"""Access to the process's services from a request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:
    from stripemeter.api.app import Services


def services_of(request: Request) -> Services:
    """The services the app was built with."""
    services: Services = request.app.state.services
    return services


def request_id_of(request: Request) -> str | None:
    """The id the context middleware gave this request."""
    return getattr(request.state, "request_id", None)
