"""Metrics and logs: Prometheus collectors and structlog configuration."""
