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
    Retry,
    StripeMeterClient,
    StripeMeterError,
)

EXIT_OK = 0
EXIT_REFUSED = 1  # the server answered "no" to part or all of the request
EXIT_USAGE = 2  # bad input, or no usable answer from the server
DEFAULT_URL = "http://localhost:3000"
CLIENT_TIMEOUT = 30.0  # seconds per request
DEFAULT_RETRIES = 3  # retries of a request that failed for a passing reason (network, 429, 5xx)
RETRY_BACKOFF = 0.5  # seconds before the first retry, doubling up to RETRY_MAX_BACKOFF
RETRY_MAX_BACKOFF = 4.0

UrlOption = typer.Option(
    DEFAULT_URL,
    "--url",
    envvar=["STRIPEMETER_URL", "STRIPEMETER_API_URL"],
    help="The StripeMeter server.",
)
RetriesOption = typer.Option(
    DEFAULT_RETRIES,
    "--retries",
    min=0,
    envvar="STRIPEMETER_RETRIES",
    help="Retries of a request after a network error, 429 or 5xx.",
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
def connect(
    url: str, api_key: str | None, retries: int = DEFAULT_RETRIES
) -> Iterator[StripeMeterClient]:
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
            retry=Retry(attempts=retries + 1, backoff=RETRY_BACKOFF, max_backoff=RETRY_MAX_BACKOFF),
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
