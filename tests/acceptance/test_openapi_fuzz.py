"""The published OpenAPI document is honest: generated requests never cause a server error.

Schemathesis reads ``/openapi.json`` from a real server and sends requests built from it, valid and
invalid, to every operation; each answer must be a non-5xx response that matches what is documented.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.acceptance.support import create_key, migrate, running_server

pytestmark = pytest.mark.slow

SCHEMATHESIS = str(Path(sys.executable).with_name("st"))
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_no_operation_fails_or_lies(tmp_path: Path) -> None:
    """Every documented operation answers generated input with a documented, non-5xx response."""
    database_url = f"sqlite:///{tmp_path / 'fuzz.db'}"
    migrate(database_url, tmp_path)
    key = create_key(database_url, tmp_path, "fuzz")
    with running_server(database_url, tmp_path) as url:
        done = subprocess.run(
            [
                SCHEMATHESIS, "run", f"{url}/openapi.json",
                "--checks", CHECKS,
                "--header", f"Authorization: Bearer {key}",
                "--max-examples", "30",
                "--seed", "1",
                "--phases", "examples,coverage,fuzzing",
                "--no-color",
            ],
            capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False,
        )  # fmt: skip
    failures = done.stdout[done.stdout.find("FAILURES") :]
    assert done.returncode == 0, failures[:20000] + done.stderr[-2000:]
