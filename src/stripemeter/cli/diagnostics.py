"""The checks ``stripemeter doctor`` runs: configuration, database, Stripe, webhooks, clocks.

Each check returns ``Check`` values (a status, what was found, and what to do about a problem);
nothing here prints. Only ``fail`` means the deployment cannot work as configured.
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.engine import make_url

from stripemeter.config import Settings
from stripemeter.services.stripe_accounts import FAKE_LIVE_KEY
from stripemeter.store import migrate
from stripemeter.stripe.client import is_live_key

STRIPE_API = "https://api.stripe.com"
CLOCK_OK_SECONDS = 5.0  # skew up to this is noise (Stripe's Date header has 1 s resolution)
CLOCK_FAIL_SECONDS = 60.0  # beyond this, event times and Stripe timestamps go wrong
SCHEMES = ("sqlite", "postgresql", "postgres")


class Status(enum.StrEnum):
    """The outcome of one check."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: its name, status, what was seen, and the fix for a problem."""

    name: str
    status: Status
    message: str
    fix: str | None = None

    def to_wire(self) -> dict[str, str | None]:
        """The ``--json`` form."""
        return {"name": self.name, "status": self.status.value, "message": self.message,
                "fix": self.fix}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Observed:
    """A clock reading taken by a check: the other side's time and ours at that moment."""

    source: str
    remote: datetime
    local: datetime


def load_settings(database_url: str | None) -> tuple[Check, Settings | None]:
    """Settings from the environment and ``.env``; what is invalid and which variable sets it."""
    overrides: dict[str, Any] = {"database_url": database_url} if database_url else {}
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        return Check(
            "configuration", Status.FAIL, f"settings do not load: {problems}",
            "fix the environment variables named (see docs/configuration.md)",
        ), None  # fmt: skip
    return Check("configuration", Status.OK, "settings load"), settings


def check_database_url(url: str) -> Check:
    """The URL parses and names a supported database."""
    try:
        scheme = make_url(url).get_backend_name()
    except Exception as exc:  # sqlalchemy raises ArgumentError and ValueError alike
        return Check("database url", Status.FAIL, f"DATABASE_URL does not parse: {exc}", _URL_FIX)
    if scheme not in SCHEMES:
        return Check(
            "database url",
            Status.FAIL,
            f"DATABASE_URL scheme {scheme!r} is not supported",
            _URL_FIX,
        )
    kind = "SQLite (embedded)" if scheme == "sqlite" else "PostgreSQL"
    return Check("database url", Status.OK, f"{kind}: {_redact(url)}")


_URL_FIX = "set DATABASE_URL to sqlite:///./stripemeter.db or postgresql://user:pass@host:5432/db"


def _redact(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def missing_sqlite_file(url: str) -> Check | None:
    """A SQLite URL whose file does not exist (connecting would create an empty one)."""
    parsed = make_url(url)
    path = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return None
    if Path(path).exists():
        return None
    return Check(
        "database", Status.FAIL, f"the SQLite file {path} does not exist",
        "run `stripemeter migrate` (or `stripemeter serve`, which migrates SQLite)",
    )  # fmt: skip


async def check_database(url: str, limit_seconds: float) -> tuple[list[Check], Observed | None]:
    """Connect, read the database's clock, and compare its schema revision with ours."""
    from stripemeter.store.database import Database

    db = Database.from_url(url)
    try:
        before = datetime.now(UTC)
        async with asyncio.timeout(limit_seconds), db.read() as conn:
            query = "SELECT now()" if db.is_postgres else "SELECT CURRENT_TIMESTAMP"
            remote = (await conn.execute(text(query))).scalar_one()
        after = datetime.now(UTC)
    except Exception as exc:  # any driver error means "cannot connect"; the message says which
        reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        return [Check(
            "database", Status.FAIL, f"cannot connect to {_redact(url)}: {reason}",
            "check that the server runs, the database exists and DATABASE_URL's user may log in",
        )], None  # fmt: skip
    finally:
        await db.dispose()
    found = [Check("database", Status.OK, f"connected ({db.dialect})"), check_migrations(url)]
    if not db.is_postgres or not isinstance(remote, datetime):
        return found, None  # SQLite reads this machine's clock
    return found, Observed("database", remote.astimezone(UTC), before + (after - before) / 2)


def check_migrations(url: str) -> Check:
    """The schema revision is the newest this version ships."""
    from alembic.script import ScriptDirectory

    if url.startswith("postgres://"):
        url = "postgresql://" + url.split("://", 1)[1]
    script = ScriptDirectory.from_config(migrate.alembic_config(url))
    heads = set(script.get_heads())
    try:
        current = migrate.current(url)
    except Exception as exc:  # the connection worked a moment ago; report what alembic says
        return Check("migrations", Status.FAIL, f"cannot read the schema revision: {exc}")
    if current is None:
        return Check("migrations", Status.FAIL, "the database was never migrated",
                     "run `stripemeter migrate`")  # fmt: skip
    if current in heads:
        return Check("migrations", Status.OK, f"at head ({current})")
    known = {rev.revision for rev in script.walk_revisions()}
    if current not in known:
        return Check(
            "migrations", Status.FAIL, f"the database is at {current}, unknown to this version",
            "run a StripeMeter version at least as new as the one that migrated this database",
        )  # fmt: skip
    return Check(
        "migrations", Status.FAIL, f"the database is at {current}, behind head {', '.join(heads)}",
        "run `stripemeter migrate`",
    )  # fmt: skip


def check_stripe(settings: Settings, timeout: float) -> tuple[list[Check], Observed | None]:
    """Key present and its mode, then one cheap authenticated call to the configured API base."""
    key = settings.stripe_secret_key.get_secret_value() if settings.stripe_secret_key else None
    base = (settings.stripe_api_base or STRIPE_API).rstrip("/")
    found: list[Check] = []
    if key is None and settings.stripe_api_base is None:
        return [Check(
            "stripe", Status.WARN, "no STRIPE_SECRET_KEY: the embedded FAKE Stripe is in use; "
            "nothing is billed", "set STRIPE_SECRET_KEY (sk_live_… or sk_test_…) to bill for real",
        )], None  # fmt: skip
    if key is None:
        found.append(Check("stripe key", Status.OK, f"no key: a fake Stripe at {base}"))
        key = FAKE_LIVE_KEY
    elif not key.startswith(("sk_", "rk_")):
        return [Check(
            "stripe key", Status.FAIL, "STRIPE_SECRET_KEY is not a Stripe secret key",
            "use a secret (sk_…) or restricted (rk_…) key from the Stripe dashboard",
        )], None  # fmt: skip
    else:
        mode = "live" if is_live_key(key) else "test"
        found.append(Check("stripe key", Status.OK, f"{mode} mode key ({key[:8]}…)"))
    test_key = settings.stripe_test_secret_key
    if test_key is not None and is_live_key(test_key.get_secret_value()):
        found.append(Check("stripe test key", Status.FAIL, "STRIPE_TEST_SECRET_KEY is a live key",
                           "set it to a test-mode key (sk_test_…) or unset it"))  # fmt: skip
    reached, observed = _reach_stripe(base, key, timeout)
    return [*found, reached], observed


def _reach_stripe(base: str, key: str, timeout: float) -> tuple[Check, Observed | None]:
    url = f"{base}/v1/billing/meters"
    try:
        started = time.monotonic()
        response = httpx.get(
            url, params={"limit": 1}, headers={"Authorization": f"Bearer {key}"}, timeout=timeout
        )
        local = datetime.now(UTC)
        elapsed = time.monotonic() - started
    except httpx.HTTPError as exc:
        return Check(
            "stripe api", Status.FAIL, f"cannot reach {base}: {type(exc).__name__}: {exc}",
            "check the network, proxies and STRIPE_API_BASE (unset it for api.stripe.com)",
        ), None  # fmt: skip
    observed = _date_header(response, local)
    if response.status_code == 401:
        return Check("stripe api", Status.FAIL, f"{base} rejected the key (401)",
                     "copy a current secret key from the Stripe dashboard"), observed  # fmt: skip
    if response.status_code == 403:
        return Check("stripe api", Status.WARN, f"{base} answered 403: the key may not read "
                     "Billing Meters", "give the restricted key Billing read/write"), observed  # fmt: skip
    if response.status_code >= 400:
        return Check("stripe api", Status.FAIL, f"{base} answered {response.status_code}",
                     "check STRIPE_API_BASE and Stripe's status page"), observed  # fmt: skip
    return Check("stripe api", Status.OK, f"{base} answered in {elapsed * 1000:.0f} ms"), observed


def _date_header(response: httpx.Response, local: datetime) -> Observed | None:
    header = response.headers.get("date")
    if not header:
        return None
    try:
        remote = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return Observed("stripe", remote.astimezone(UTC), local)


def check_webhooks(settings: Settings) -> Check:
    """A signing secret is set (when Stripe is real) and looks like one."""
    secrets = settings.stripe_webhook_secrets
    if not secrets:
        if settings.uses_fake_stripe:
            return Check("webhooks", Status.SKIP, "no webhook secret (not needed with the fake)")
        return Check(
            "webhooks", Status.WARN, "STRIPE_WEBHOOK_SECRET is not set: Stripe's webhooks "
            "(price.updated) cannot be verified, so cached prices refresh only when they expire",
            "add a webhook endpoint in Stripe and set STRIPE_WEBHOOK_SECRET to its whsec_… secret",
        )  # fmt: skip
    bad = [s for s in secrets if not s.startswith("whsec_")]
    if bad:
        return Check("webhooks", Status.FAIL, "STRIPE_WEBHOOK_SECRET is not a whsec_… secret",
                     "set STRIPE_WEBHOOK_SECRET to the endpoint's signing secret (whsec_…)")  # fmt: skip
    return Check("webhooks", Status.OK, f"{len(secrets)} signing secret(s) configured")


def check_clocks(observed: list[Observed]) -> list[Check]:
    """This machine's UTC clock against the database's and Stripe's."""
    if not observed:
        return [Check("clock", Status.SKIP, "nothing to compare with (SQLite, no Stripe answer)")]
    found = []
    for reading in observed:
        skew = (reading.remote - reading.local).total_seconds()
        message = f"{reading.source} clock is {abs(skew):.1f} s {'ahead' if skew > 0 else 'behind'}"
        if abs(skew) <= CLOCK_OK_SECONDS:
            found.append(Check(f"clock ({reading.source})", Status.OK, message))
            continue
        status = Status.FAIL if abs(skew) > CLOCK_FAIL_SECONDS else Status.WARN
        found.append(Check(
            f"clock ({reading.source})", status, message,
            "synchronise clocks with NTP (chrony or systemd-timesyncd) on this host and the "
            "database host: event times and Stripe timestamps depend on them",
        ))  # fmt: skip
    return found


def run_checks(database_url: str | None, timeout: float) -> list[Check]:
    """Every check, in order; later ones are skipped when what they need failed."""
    loaded, settings = load_settings(database_url)
    if settings is None:
        return [loaded]
    found = [loaded, check_database_url(settings.database_url)]
    observed: list[Observed] = []
    missing = missing_sqlite_file(settings.database_url)
    if missing is not None:
        found.append(missing)
    elif found[-1].status is Status.OK:
        database, db_clock = asyncio.run(check_database(settings.database_url, timeout))
        found += database
        observed += [db_clock] if db_clock else []
    stripe, stripe_clock = check_stripe(settings, timeout)
    found += stripe
    observed += [stripe_clock] if stripe_clock else []
    found.append(check_webhooks(settings))
    return found + check_clocks(observed)
