"""A stateful fake Stripe server: Stripe's rules over real HTTP, for tests and the no-key default.

Entry points live in their concept modules: ``app.create_app``, ``server.run``,
``state.FakeStripeState``.
"""
