"""Import target for multi-process servers: ``uvicorn stripemeter.api.asgi:app``."""

from __future__ import annotations

from stripemeter.api.app import create_app
from stripemeter.config import Settings
from stripemeter.observability import logging as logs

_settings = Settings()
logs.configure(_settings.log_level, _settings.log_format)
app = create_app(_settings)
