"""The console's and widget's static files, read once from the package and served by name."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path

from fastapi import APIRouter
from starlette.responses import Response

STATIC = Path(__file__).parent / "static"
TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "application/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}
ASSET_MAX_AGE = 3600  # seconds browsers may cache a stylesheet or script

router = APIRouter(include_in_schema=False)


@cache
def _load(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def asset_response(
    name: str, *, allowed: Iterable[str] | None = None, max_age: int = ASSET_MAX_AGE
) -> Response:
    """A packaged static file by name (only files directly in ``static/`` with a known type)."""
    names = (
        {p.name for p in STATIC.iterdir() if p.suffix in TYPES} if allowed is None else set(allowed)
    )
    if name not in names:
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(
        _load(name),
        media_type=TYPES[Path(name).suffix],
        headers={
            "Cache-Control": f"public, max-age={max_age}",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/admin/static/{name}")
async def console_asset(name: str) -> Response:
    """The console's stylesheet and script."""
    return asset_response(name, allowed=("console.css", "console.js"))
