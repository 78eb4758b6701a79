"""The package declares its public API."""

from __future__ import annotations

import inspect

import stripemeter.domain.pricing as pricing


def test_all_is_sorted_constants_classes_then_functions() -> None:
    """``__all__`` is sorted the way ruff's RUF022 sorts it, with no duplicates."""
    names = pricing.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    assert len(set(names)) == len(names)


def test_every_public_name_is_exported() -> None:
    """Every public class and function defined in the package's modules is in ``__all__``."""
    public = {
        name
        for name, value in vars(pricing).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__.startswith("stripemeter.domain.pricing")
    }
    assert public <= set(pricing.__all__)
    assert all(hasattr(pricing, name) for name in pricing.__all__)
