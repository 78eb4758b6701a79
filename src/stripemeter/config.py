"""Settings from the environment and an optional ``.env`` file, read once at the edge."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./stripemeter.db"
DEFAULT_PORT = 3000  # the port the original product's documentation uses


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Everything the service can be told; see docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    database_url: str = Field(DEFAULT_DATABASE_URL, validation_alias=_env("DATABASE_URL"))
    host: str = Field("127.0.0.1", validation_alias=_env("STRIPEMETER_HOST", "HOST"))
    port: int = Field(DEFAULT_PORT, validation_alias=_env("STRIPEMETER_PORT", "PORT"))
    log_level: str = Field("INFO", validation_alias=_env("STRIPEMETER_LOG_LEVEL", "LOG_LEVEL"))
    log_format: Literal["json", "console"] = Field(
        "json", validation_alias=_env("STRIPEMETER_LOG_FORMAT")
    )
    lateness_window_seconds: int = Field(
        48 * 3600, ge=0, validation_alias=_env("STRIPEMETER_LATENESS_WINDOW_SECONDS")
    )
    max_future_seconds: int = Field(
        300, ge=0, validation_alias=_env("STRIPEMETER_MAX_FUTURE_SECONDS")
    )
    max_batch_events: int = Field(
        1000, ge=1, validation_alias=_env("STRIPEMETER_MAX_BATCH_EVENTS", "MAX_INGEST_BATCH")
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, validation_alias=_env("STRIPEMETER_MAX_BODY_BYTES")
    )
    max_meta_bytes: int = Field(4096, ge=0, validation_alias=_env("STRIPEMETER_MAX_META_BYTES"))
    ingest_writers: int = Field(0, ge=0, validation_alias=_env("STRIPEMETER_INGEST_WRITERS"))
    max_group_events: int = Field(8000, ge=1, validation_alias=_env("STRIPEMETER_MAX_GROUP_EVENTS"))
    # Serve POST /v1/events[/ingest] straight from the request middleware, skipping route matching
    # and dependency solving (same handlers and checks); off sends them through the router.
    ingest_fast_path: bool = Field(True, validation_alias=_env("STRIPEMETER_INGEST_FAST_PATH"))
    # `stripemeter serve`: allocations between collections of the youngest GC generation (Python's
    # default is 700); 0 keeps the interpreter's setting. See cli/server.py tune_gc.
    gc_gen0_threshold: int = Field(
        10_000, ge=0, validation_alias=_env("STRIPEMETER_GC_GEN0_THRESHOLD")
    )
    db_pool_size: int = Field(10, ge=1, validation_alias=_env("STRIPEMETER_DB_POOL_SIZE"))
    workers: int = Field(1, ge=1, validation_alias=_env("STRIPEMETER_WORKERS", "WEB_CONCURRENCY"))
    metrics_public: bool = Field(True, validation_alias=_env("STRIPEMETER_METRICS_PUBLIC"))
    bootstrap_tenant: str = Field("default", validation_alias=_env("STRIPEMETER_BOOTSTRAP_TENANT"))
    backfill_dir: str | None = Field(None, validation_alias=_env("STRIPEMETER_BACKFILL_DIR"))
    stripe_secret_key: SecretStr | None = Field(None, validation_alias=_env("STRIPE_SECRET_KEY"))
    stripe_test_secret_key: SecretStr | None = Field(
        None, validation_alias=_env("STRIPE_TEST_SECRET_KEY")
    )
    stripe_api_base: str | None = Field(None, validation_alias=_env("STRIPE_API_BASE"))
    stripe_meter_events_base: str | None = Field(
        None, validation_alias=_env("STRIPE_METER_EVENTS_BASE")
    )
    stripe_webhook_secret: SecretStr | None = Field(
        None, validation_alias=_env("STRIPE_WEBHOOK_SECRET")
    )
    push_interval_seconds: float = Field(
        5.0, gt=0, validation_alias=_env("STRIPEMETER_PUSH_INTERVAL_SECONDS")
    )
    push_enabled: bool = Field(True, validation_alias=_env("STRIPEMETER_PUSH_ENABLED"))
    push_batch_size: int = Field(200, ge=1, validation_alias=_env("STRIPEMETER_PUSH_BATCH_SIZE"))
    push_concurrency: int = Field(8, ge=1, validation_alias=_env("STRIPEMETER_PUSH_CONCURRENCY"))
    push_lease_seconds: float = Field(
        60.0, gt=0, validation_alias=_env("STRIPEMETER_PUSH_LEASE_SECONDS")
    )
    stripe_timeout_seconds: float = Field(
        20.0, gt=0, validation_alias=_env("STRIPEMETER_STRIPE_TIMEOUT_SECONDS")
    )
    stripe_live_rate: float = Field(
        1000.0, gt=0, validation_alias=_env("STRIPEMETER_STRIPE_LIVE_RATE")
    )
    stripe_test_rate: float = Field(
        25.0, gt=0, validation_alias=_env("STRIPEMETER_STRIPE_TEST_RATE")
    )
    stripe_meter_driver: Literal["meters", "meter_stream"] = Field(
        "meters", validation_alias=_env("STRIPEMETER_STRIPE_METER_DRIVER")
    )
    fake_stripe_port: int = Field(0, ge=0, validation_alias=_env("STRIPEMETER_FAKE_STRIPE_PORT"))
    # Reconciliation (issue 4): schedule, tolerance, the pre-invoice gate, how long to wait for
    # Stripe's summaries to catch up before a difference is called drift.
    reconcile_interval_seconds: float = Field(
        3600.0, gt=0, validation_alias=_env("STRIPEMETER_RECONCILE_INTERVAL_SECONDS")
    )
    reconcile_enabled: bool = Field(True, validation_alias=_env("STRIPEMETER_RECONCILE_ENABLED"))
    reconcile_epsilon: Decimal = Field(
        Decimal("0.005"), ge=0, validation_alias=_env("STRIPEMETER_RECONCILE_EPSILON")
    )
    reconcile_recheck_seconds: float = Field(
        5.0, ge=0, validation_alias=_env("STRIPEMETER_RECONCILE_RECHECK_SECONDS")
    )
    invoice_gate_policy: Literal["hold", "report"] = Field(
        "hold", validation_alias=_env("STRIPEMETER_INVOICE_GATE_POLICY")
    )
    allow_self_approval: bool = Field(
        False, validation_alias=_env("STRIPEMETER_ALLOW_SELF_APPROVAL")
    )
    # Signs console session cookies and customer widget tokens. Unset: a random secret is generated
    # once and stored in the database, so every process on that database agrees.
    secret_key: SecretStr | None = Field(None, validation_alias=_env("STRIPEMETER_SECRET_KEY"))
    # Alerts (docs/alerts.md): the evaluation loop, notification delivery, and e-mail over SMTP.
    alerts_enabled: bool = Field(True, validation_alias=_env("STRIPEMETER_ALERTS_ENABLED"))
    alerts_interval_seconds: float = Field(
        30.0, gt=0, validation_alias=_env("STRIPEMETER_ALERTS_INTERVAL_SECONDS")
    )
    alerts_delivery_interval_seconds: float = Field(
        2.0, gt=0, validation_alias=_env("STRIPEMETER_ALERTS_DELIVERY_INTERVAL_SECONDS")
    )
    alerts_delivery_max_attempts: int = Field(
        8, ge=1, validation_alias=_env("STRIPEMETER_ALERTS_DELIVERY_MAX_ATTEMPTS")
    )
    alerts_delivery_backoff_seconds: float = Field(
        5.0, gt=0, validation_alias=_env("STRIPEMETER_ALERTS_DELIVERY_BACKOFF_SECONDS")
    )
    alerts_delivery_timeout_seconds: float = Field(
        10.0, gt=0, validation_alias=_env("STRIPEMETER_ALERTS_DELIVERY_TIMEOUT_SECONDS")
    )
    # Off: webhooks and Slack URLs that resolve to private, loopback or link-local addresses are
    # refused (SSRF guard). Turn on only where alert receivers live on a private network.
    alerts_allow_private_targets: bool = Field(
        False, validation_alias=_env("STRIPEMETER_ALERTS_ALLOW_PRIVATE_TARGETS")
    )
    smtp_host: str | None = Field(None, validation_alias=_env("STRIPEMETER_SMTP_HOST"))
    smtp_port: int = Field(587, ge=1, le=65535, validation_alias=_env("STRIPEMETER_SMTP_PORT"))
    smtp_username: str | None = Field(None, validation_alias=_env("STRIPEMETER_SMTP_USERNAME"))
    smtp_password: SecretStr | None = Field(
        None, validation_alias=_env("STRIPEMETER_SMTP_PASSWORD")
    )
    smtp_from: str = Field("stripemeter@localhost", validation_alias=_env("STRIPEMETER_SMTP_FROM"))
    smtp_starttls: bool = Field(True, validation_alias=_env("STRIPEMETER_SMTP_STARTTLS"))
    smtp_ssl: bool = Field(False, validation_alias=_env("STRIPEMETER_SMTP_SSL"))
    smtp_timeout_seconds: float = Field(
        10.0, gt=0, validation_alias=_env("STRIPEMETER_SMTP_TIMEOUT_SECONDS")
    )

    @property
    def lateness_window(self) -> timedelta:
        """The default lateness window for metrics that set none."""
        return timedelta(seconds=self.lateness_window_seconds)

    @property
    def is_sqlite(self) -> bool:
        """Whether the embedded default database is in use."""
        return self.database_url.startswith("sqlite")

    @property
    def stripe_webhook_secrets(self) -> list[str]:
        """Every accepted webhook signing secret (comma-separated for rotation)."""
        if self.stripe_webhook_secret is None:
            return []
        raw = self.stripe_webhook_secret.get_secret_value()
        return [part.strip() for part in raw.split(",") if part.strip()]

    @property
    def uses_fake_stripe(self) -> bool:
        """Whether no Stripe is configured, so the embedded fake Stripe stands in."""
        return self.stripe_secret_key is None and self.stripe_api_base is None

    @property
    def writer_count(self) -> int:
        """Concurrent group-commit writers: one unless configured (docs/configuration.md)."""
        # One writer coalesces the most requests per commit; a second overlaps commits, which pays
        # only when they wait on a slow disk with CPU to spare (measured in docs/benchmarks.md).
        return self.ingest_writers or 1
