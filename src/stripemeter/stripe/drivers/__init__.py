"""Billing drivers: one small base (``base.Driver``) and an implementation per Stripe API."""
