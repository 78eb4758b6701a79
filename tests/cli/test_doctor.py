"""``stripemeter doctor``: a healthy deployment exits 0; each problem is named with its fix."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from stripemeter.store.migrate import upgrade
from tests.acceptance.support import pg_url, postgres_database
from tests.cli.conftest import STRIPE_KEY, Cli

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def doctor_runs(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every doctor case: the healthy ones and one problem as processes, the rest in-process."""
    scratch = tmp_path_factory.mktemp("doctor")
    stripe = {"STRIPE_API_BASE": cli.stripe_url, "STRIPE_SECRET_KEY": STRIPE_KEY}
    with postgres_database("sm_doc") as migrated, postgres_database("sm_doc") as empty:
        upgrade(migrated)
        processes = {
            "sqlite": {},
            "postgres": {"DATABASE_URL": migrated, **stripe,
                         "STRIPE_WEBHOOK_SECRET": "whsec_cli_tests"},
            "unmigrated": {"DATABASE_URL": empty},
        }  # fmt: skip
        calls = [(["doctor", "--json"], {"env": env}) for env in processes.values()]
        results: dict[str, Any] = dict(zip(processes, cli.run_many(calls), strict=True))
        results["human"] = cli.invoke("doctor", env=processes["unmigrated"])
        in_process = {
            "scheme": {"DATABASE_URL": "mysql://root@127.0.0.1/stripemeter"},
            "no database": {"DATABASE_URL": pg_url("sm_doc_does_not_exist")},
            "no file": {"DATABASE_URL": f"sqlite:///{scratch / 'missing.db'}"},
            "stripe down": {"STRIPE_API_BASE": "http://127.0.0.1:9", "STRIPE_SECRET_KEY":
                            "sk_test_x", "STRIPE_WEBHOOK_SECRET": "not-a-secret"},
            "bad key": {**stripe, "STRIPE_SECRET_KEY": "pk_test_publishable"},
            "settings": {"STRIPEMETER_PORT": "not-a-port"},
        }  # fmt: skip
        for name, env in in_process.items():
            results[name] = cli.invoke("doctor", "--json", env=env)
    return results


def checks(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    """The doctor's JSON report by check name."""
    report = json.loads(done.stdout)
    assert report["healthy"] is (done.returncode == 0)
    return {check["name"]: check for check in report["checks"]}


def statuses(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Each check's status."""
    return {name: check["status"] for name, check in checks(done).items()}


def test_embedded_default_is_healthy(doctor_runs: dict[str, Any]) -> None:
    """A migrated SQLite database without Stripe: healthy, with a warning about the FAKE Stripe."""
    done = doctor_runs["sqlite"]
    assert done.returncode == 0, done.stdout
    found = statuses(done)
    assert found["database"] == found["migrations"] == "ok"
    assert found["stripe"] == "warn"
    assert "FAKE" in checks(done)["stripe"]["message"]
    assert found["webhooks"] == "skip"


def test_postgres_with_stripe_is_healthy_with_clocks_checked(doctor_runs: dict[str, Any]) -> None:
    """PostgreSQL at head, a reachable Stripe, a webhook secret: every check ok, both clocks read."""
    done = doctor_runs["postgres"]
    assert done.returncode == 0, done.stdout
    found = statuses(done)
    assert set(found.values()) == {"ok"}, found
    assert "test mode" in checks(done)["stripe key"]["message"]
    assert {"clock (database)", "clock (stripe)"} <= set(found)


@pytest.mark.parametrize(
    ("case", "check", "fix"),
    [
        ("scheme", "database url", "DATABASE_URL"),
        ("unmigrated", "migrations", "stripemeter migrate"),
        ("no database", "database", "database exists"),
        ("no file", "database", "stripemeter migrate"),
        ("stripe down", "stripe api", "STRIPE_API_BASE"),
        ("stripe down", "webhooks", "whsec_"),
        ("bad key", "stripe key", "sk_"),
        ("settings", "configuration", "environment variables"),
    ],
)
def test_problems_exit_1_and_say_what_to_fix(
    doctor_runs: dict[str, Any], case: str, check: str, fix: str
) -> None:
    """Each broken setup fails the named check, with a fix that says what to do; exit 1."""
    done = doctor_runs[case]
    assert done.returncode == 1, done.stdout
    found = checks(done)[check]
    assert found["status"] == "fail"
    assert fix in found["fix"]


def test_human_output_names_the_problem(doctor_runs: dict[str, Any]) -> None:
    """Without --json the report is a table ending in "problems found"."""
    done = doctor_runs["human"]
    assert done.returncode == 1
    assert "never migrated" in done.stdout
    assert "stripemeter migrate" in done.stdout
    assert "problems found" in done.stdout
