"""Structured logging: JSON lines (or console) through structlog, request ids bound per request."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import IO, Any

import msgspec
import structlog

_SECRET_FIELDS = frozenset({"authorization", "api_key", "key", "secret", "x-api-key", "password"})


def _redact(
    _logger: object, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    # Secrets never reach a log line, whoever logs them.
    for name in list(event_dict):
        if name.lower() in _SECRET_FIELDS:
            event_dict[name] = _REDACTED
    return event_dict


_REDACTED = "[redacted]"


# msgspec renders a log line several times faster than the json module; anything it does not know
# (an exception, a Decimal) is written as its str().
_encoder = msgspec.json.Encoder(enc_hook=str)


def _json_line(event: Any, **_options: Any) -> str:
    return _encoder.encode(event).decode()


RequestLine = Callable[[str, str, int, float, Mapping[str, Any]], None]


def _request_line_through_structlog(
    method: str, path: str, status: int, duration_ms: float, context: Mapping[str, Any]
) -> None:
    structlog.get_logger("stripemeter.http").info(
        "request", method=method, path=path, status=status, duration_ms=duration_ms, **context
    )


def _request_line_writer(stream: IO[str]) -> RequestLine:
    """Writes the request line as the JSON chain would, without its per-call machinery.

    The line is written for every request, and the bound logger, the processor chain and the
    context-variable merge cost more than the request's own work on the ingest path. Its fields
    are known (no secrets, no exception), so it is rendered at once and written with one call.
    """
    try:
        fd: int | None = stream.fileno()
    except (AttributeError, OSError, ValueError):  # a stream without a descriptor (tests)
        fd = None

    def write(
        method: str, path: str, status: int, duration_ms: float, context: Mapping[str, Any]
    ) -> None:
        line = {
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "event": "request",
            # The request line skips structlog's chain, not its redaction.
            **{k: _REDACTED if k.lower() in _SECRET_FIELDS else v for k, v in context.items()},
            "level": "info",
            "timestamp": datetime.now(UTC),  # msgspec writes what TimeStamper does: ISO, Z
        }
        data = _encoder.encode(line) + b"\n"
        if fd is None:
            stream.write(data.decode())
            stream.flush()
            return
        while data:  # a pipe may take a long line in parts
            data = data[os.write(fd, data) :]

    return write


_request_line: RequestLine = _request_line_through_structlog


def log_request(
    method: str, path: str, status: int, duration_ms: float, context: Mapping[str, Any]
) -> None:
    """Write a request's canonical ``request`` line, with ``context`` (request id, tenant, key)."""
    _request_line(method, path, status, duration_ms, context)


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """Configure structlog and the standard library once, at the edge."""
    global _request_line
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    threshold = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    if fmt != "json":
        _request_line = _request_line_through_structlog
    elif threshold > logging.INFO:
        _request_line = _skip_request_line
    else:
        _request_line = _request_line_writer(sys.stderr)
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(message)s")


def _skip_request_line(
    _method: str, _path: str, _status: int, _duration_ms: float, _context: Mapping[str, Any]
) -> None:
    pass
