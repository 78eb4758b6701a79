"""The Python SDK of StripeMeter: track usage events, read usage, manage billing data.

It depends on httpx only and never imports the server's modules.
"""

import contextlib as _contextlib

from stripemeter.client._async_client import AsyncStripeMeterClient
from stripemeter.client._client import StripeMeterClient
from stripemeter.client._config import (
    NO_RETRY,
    USE_CLIENT_DEFAULT,
    Retry,
    Timeout,
    UseClientDefault,
    default_spool_dir,
)
from stripemeter.client._exceptions import (
    APIError,
    AuthenticationError,
    ClientClosedError,
    ConflictError,
    EventsRejectedError,
    NetworkError,
    NetworkTimeout,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    StripeMeterError,
    ValidationError,
)
from stripemeter.client._models import (
    Entitlement,
    Event,
    EventError,
    EventRecord,
    EventResult,
    IngestResult,
    Projection,
    ProjectionLine,
    Resource,
    Usage,
    UsageHistory,
    UsageMetric,
    UsagePoint,
)

__all__ = [
    "NO_RETRY",
    "USE_CLIENT_DEFAULT",
    "APIError",
    "AsyncStripeMeterClient",
    "AuthenticationError",
    "ClientClosedError",
    "ConflictError",
    "Entitlement",
    "Event",
    "EventError",
    "EventRecord",
    "EventResult",
    "EventsRejectedError",
    "IngestResult",
    "NetworkError",
    "NetworkTimeout",
    "NotFoundError",
    "PermissionDeniedError",
    "Projection",
    "ProjectionLine",
    "RateLimitError",
    "Resource",
    "Retry",
    "ServerError",
    "StripeMeterClient",
    "StripeMeterError",
    "Timeout",
    "Usage",
    "UsageHistory",
    "UsageMetric",
    "UsagePoint",
    "UseClientDefault",
    "ValidationError",
    "default_spool_dir",
]

# Public names report this package as their home, as httpx does (tracebacks, docs, repr).
for _name in __all__:
    _member = globals()[_name]
    if isinstance(_member, type) or callable(_member):
        with _contextlib.suppress(AttributeError, TypeError):  # builtins refuse it
            _member.__module__ = "stripemeter.client"
del _name, _member
