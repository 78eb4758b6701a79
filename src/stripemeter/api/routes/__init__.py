"""api/routes layer."""
