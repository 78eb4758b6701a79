"""What the client commands share: the server URL and key, an SDK client, errors as exit codes.

Client commands talk to a running server with the SDK (``stripemeter.client``), never to the
database. Their exit codes:

- ``0``: done, and everything the server was sent was counted or saved;
- ``1``: the server answered but refused something (rejected or conflicting events, a missing
  mapping, an invalid field);
- ``2``: a usage error, unreadable input, or no usable answer (the server cannot be reached, or
  the key is missing, unknown or lacks the scope).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer

from stripemeter.cli.common import err_console
from stripemeter.client import (
    APIError,
    AuthenticationError,
    NetworkError,
    PermissionDeniedError,
    Resource,
    StripeMeterClient,
    StripeMeterError,
)

EXIT_OK = 0
EXIT_REFUSED = 1  # the server answered "no" to part or all of the request
EXIT_USAGE = 2  # bad input, or no usable answer from the server
DEFAULT_URL = "http://localhost:3000"
CLIENT_TIMEOUT = 30.0  # seconds per request

UrlOption = typer.Option(
    DEFAULT_URL,
    "--url",
    envvar=["STRIPEMETER_URL", "STRIPEMETER_API_URL"],
    help="The StripeMeter server.",
)
ApiKeyOption = typer.Option(
    None,
    "--api-key",
    envvar="STRIPEMETER_API_KEY",
    help="An API key of the tenant (stripemeter keys create).",
    show_default=False,
)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print an error on stderr and exit with ``code``."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def connect(url: str, api_key: str | None) -> Iterator[StripeMeterClient]:
    """An SDK client for one command: no spool, no background thread; SDK errors become exits."""
    if not api_key:
        fail("an API key is required: pass --api-key or set STRIPEMETER_API_KEY")
    try:
        client = StripeMeterClient(
            api_url=url,
            api_key=api_key,
            spool=False,
            flush_interval=None,
            timeout=CLIENT_TIMEOUT,
        )
    except ValueError as exc:
        fail(str(exc))
    try:
        with client:
            yield client
    except NetworkError as exc:
        fail(f"cannot reach {url}: {exc}")
    except (AuthenticationError, PermissionDeniedError) as exc:
        fail(f"the server refused the key: {exc.message}")
    except APIError as exc:
        where = f" ({exc.param})" if exc.param else ""
        fail(f"{exc.message}{where}", EXIT_REFUSED)
    except StripeMeterError as exc:
        fail(str(exc))


def wire(resource: Resource) -> dict[str, Any]:
    """A management record as the server sent it."""
    return dict(resource.raw)


def cell(value: Any) -> str:
    """A table cell: empty for None, ``yes``/``no`` for booleans."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
