"""Stripe: billing drivers (meters, legacy usage records, shadow) and the fake Stripe server."""
