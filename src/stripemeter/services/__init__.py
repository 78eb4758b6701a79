"""Orchestration: ingest, replay, pushing, reconciliation; services own the transactions."""
