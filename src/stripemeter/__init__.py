"""StripeMeter: usage metering for Stripe billing.

The top-level package is the SDK's home (``from stripemeter import StripeMeterClient``), so it imports
nothing from the server: the service lives in ``stripemeter.api``, ``stripemeter.services`` and below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stripemeter._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from stripemeter.client import AsyncStripeMeterClient, StripeMeterClient

__all__ = ["AsyncStripeMeterClient", "StripeMeterClient", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy so that `import stripemeter` stays cheap for the server and the CLI.
    if name in ("StripeMeterClient", "AsyncStripeMeterClient"):
        from stripemeter import client

        return getattr(client, name)
    raise AttributeError(f"module 'stripemeter' has no attribute {name!r}")
