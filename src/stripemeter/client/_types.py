"""Type aliases of the SDK."""

from __future__ import annotations

import os
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeAlias

QuantityLike: TypeAlias = int | Decimal | str | float
TimeLike: TypeAlias = datetime | str
JSONObject: TypeAlias = dict[str, Any]
QueryParams: TypeAlias = dict[str, str | int | bool]
SpoolSetting: TypeAlias = bool | str | os.PathLike[str] | None
