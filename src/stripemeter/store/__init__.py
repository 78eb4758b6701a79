"""Persistence: tables, migrations, repositories and transactions for SQLite and PostgreSQL."""
