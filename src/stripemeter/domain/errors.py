"""The domain's error tree.

StripeMeterError
 ├── InvalidInput            a value broke a rule (carries the field and, in batches, the index)
 ├── NotFound                no such row for this tenant
 ├── Conflict                the request contradicts stored state
 ├── Unauthorized            no usable credential
 └── Forbidden               a credential without the right scope or tenant

Status codes live in ``stripemeter.api.errors``; the domain knows none.
"""

from __future__ import annotations

from typing import Any


class StripeMeterError(Exception):
    """Root of every error the service raises on purpose."""

    code = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.details = details


class InvalidInput(StripeMeterError):
    """A value in the request broke a rule."""

    code = "invalid_input"


class NotFound(StripeMeterError):
    """No such resource for this tenant."""

    code = "not_found"


class Conflict(StripeMeterError):
    """The request contradicts what is stored."""

    code = "conflict"


class Unauthorized(StripeMeterError):
    """No valid credential was presented."""

    code = "unauthorized"


class Forbidden(StripeMeterError):
    """The credential is valid but may not do this."""

    code = "forbidden"
