"""The SDK's public surface is declared in ``__all__`` and pulls in nothing of the server."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import stripemeter
import stripemeter.client

SERVER_ONLY = ("fastapi", "starlette", "sqlalchemy", "alembic", "stripe", "pydantic",
               "pydantic_settings", "uvicorn", "msgspec", "structlog", "typer", "rich")  # fmt: skip


def _isort_key(name: str) -> tuple[int, str]:
    # The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions.
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def test_all_public_names_are_exported() -> None:
    """Every public name of ``stripemeter.client`` is in its sorted ``__all__``."""
    public = [
        name
        for name, value in vars(stripemeter.client).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    ]
    assert sorted(public, key=_isort_key) == stripemeter.client.__all__


def test_exported_names_belong_to_the_package() -> None:
    """Classes and functions report ``stripemeter.client`` as their module, as httpx's do."""
    for name in stripemeter.client.__all__:
        member = getattr(stripemeter.client, name)
        if isinstance(member, type) or callable(member):
            assert member.__module__ == "stripemeter.client", name


def test_the_top_level_package_re_exports_the_clients() -> None:
    """``from stripemeter import StripeMeterClient, AsyncStripeMeterClient`` works."""
    from stripemeter import AsyncStripeMeterClient, StripeMeterClient

    assert StripeMeterClient is stripemeter.client.StripeMeterClient
    assert AsyncStripeMeterClient is stripemeter.client.AsyncStripeMeterClient


def _modules_after(code: str) -> set[str]:
    """``sys.modules`` of a fresh interpreter after running ``code``."""
    script = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout))


def test_importing_the_sdk_loads_no_server_module() -> None:
    """In a fresh interpreter the SDK loads httpx and the stdlib, no server package or module."""
    loaded = _modules_after(
        "import stripemeter\nstripemeter.StripeMeterClient, stripemeter.AsyncStripeMeterClient"
    )
    assert "stripemeter.client._client" in loaded
    ours = {m for m in loaded if m.startswith("stripemeter.")}
    allowed = {"stripemeter._version", "stripemeter.client"}
    assert {m for m in ours if not m.startswith("stripemeter.client.")} <= allowed
    # httpx may load its optional CLI's packages (rich, click…); anything beyond that is ours.
    beyond_httpx = loaded - _modules_after("import httpx")
    heavy = {m for m in beyond_httpx if m.split(".")[0] in SERVER_ONLY}
    assert heavy == set()
    assert {m.split(".")[0] for m in loaded} & {
        "fastapi",
        "sqlalchemy",
        "stripe",
        "pydantic",
    } == set()
