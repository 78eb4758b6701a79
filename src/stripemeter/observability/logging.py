"""Structured logging: JSON lines (or console) through structlog, request ids bound per request."""

from __future__ import annotations

import logging
import sys
from typing import Any

import msgspec
import structlog

_SECRET_FIELDS = frozenset({"authorization", "api_key", "key", "secret", "x-api-key", "password"})


def _redact(
    _logger: object, _method: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    # Secrets never reach a log line, whoever logs them.
    for name in list(event_dict):
        if name.lower() in _SECRET_FIELDS:
            event_dict[name] = "[redacted]"
    return event_dict


# msgspec renders a log line several times faster than the json module; anything it does not know
# (an exception, a Decimal) is written as its str().
_encoder = msgspec.json.Encoder(enc_hook=str)


def _json_line(event: Any, **_options: Any) -> str:
    return _encoder.encode(event).decode()


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """Configure structlog and the standard library once, at the edge."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer(serializer=_json_line)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(message)s")
