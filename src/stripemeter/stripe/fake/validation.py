"""Request rules as values (types, required fields, lengths, enums) and their checker."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias

from stripemeter.stripe.fake.errors import (
    StripeError,
    invalid_request,
    missing_param,
    unknown_param,
)

_INTEGER = re.compile(r"^-?\d+$")
#: Plain decimal notation only: Stripe rejects exponents, NaN and infinities in amounts and values.
_DECIMAL = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)$")


@dataclass(frozen=True)
class Str:
    """A string, optionally bounded in length or restricted to an enum."""

    max_length: int | None = None
    enum: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Int:
    """An integer (form values arrive as digit strings)."""


@dataclass(frozen=True)
class Bool:
    """A boolean (``true``/``false`` in forms)."""


@dataclass(frozen=True)
class Dec:
    """A decimal number written as a string, never a float."""


@dataclass(frozen=True)
class StrMap:
    """A map of string keys to string values (``metadata``, ``payload``)."""

    max_value_length: int | None = None


@dataclass(frozen=True)
class Arr:
    """A list of items of one spec."""

    item: Spec
    max_items: int | None = None


@dataclass(frozen=True)
class OneOf:
    """A value accepted if any option accepts it (``up_to``: integer or ``inf``)."""

    options: tuple[Spec, ...]


@dataclass(frozen=True)
class Obj:
    """An object with named fields, some required; unknown fields are refused unless ``open``."""

    fields: dict[str, Spec]
    required: frozenset[str] = field(default_factory=frozenset)
    open: bool = False


Spec: TypeAlias = Str | Int | Bool | Dec | StrMap | Arr | OneOf | Obj


def obj(required: tuple[str, ...] = (), **fields: Spec) -> Obj:
    """Shorthand for an :class:`Obj` spec."""
    return Obj(fields=fields, required=frozenset(required))


def validate(spec: Obj, params: dict[str, Any]) -> dict[str, Any]:
    """Check ``params`` against ``spec`` and return them with numbers and booleans converted."""
    result = _check(spec, params, "")
    assert isinstance(result, dict)
    return result


def _name(path: str, key: str | int) -> str:
    return f"{path}[{key}]" if path else str(key)


def _check(spec: Spec, value: Any, path: str) -> Any:
    if isinstance(spec, Obj):
        if value == "" and not spec.required:
            return {}  # Stripe lets ``field=`` clear an optional hash
        if not isinstance(value, dict):
            raise invalid_request(f"Invalid object: {path} must be a hash", param=path)
        for key in value:
            if key not in spec.fields and not spec.open:
                raise unknown_param(_name(path, key))
        for key in sorted(spec.required):
            if key not in value or value[key] in (None, ""):
                raise missing_param(_name(path, key))
        return {
            k: _check(spec.fields[k], v, _name(path, k)) if k in spec.fields else v
            for k, v in value.items()
        }
    if isinstance(spec, Str):
        if not isinstance(value, str):
            raise invalid_request(f"Invalid string: {path} must be a string", param=path)
        if spec.max_length is not None and len(value) > spec.max_length:
            raise invalid_request(
                f"Invalid string: {value[:20]}...; must be at most {spec.max_length} characters",
                param=path,
            )
        if spec.enum is not None and value not in spec.enum:
            raise invalid_request(
                f"Invalid {path}: must be one of {', '.join(spec.enum)}", param=path
            )
        return value
    if isinstance(spec, Int):
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and _INTEGER.match(value))
        ):
            raise invalid_request(
                f"Invalid integer: {value}", param=path, code="parameter_invalid_integer"
            )
        return int(value)
    if isinstance(spec, Bool):
        if value in (True, "true"):
            return True
        if value in (False, "false"):
            return False
        raise invalid_request(f"Invalid boolean: {value}", param=path)
    if isinstance(spec, Dec):
        return parse_decimal(value, path)
    if isinstance(spec, StrMap):
        if value == "":
            return {}
        if not isinstance(value, dict):
            raise invalid_request(f"Invalid object: {path} must be a hash", param=path)
        for key, item in value.items():
            if not isinstance(item, str):
                raise invalid_request(
                    f"Invalid string: {_name(path, key)} must be a string", param=_name(path, key)
                )
            if spec.max_value_length is not None and len(item) > spec.max_value_length:
                raise invalid_request(
                    f"Invalid string: {_name(path, key)} must be at most "
                    f"{spec.max_value_length} characters",
                    param=_name(path, key),
                )
        return dict(value)
    if isinstance(spec, Arr):
        if not isinstance(value, list):
            raise invalid_request(f"Invalid array: {path} must be an array", param=path)
        if spec.max_items is not None and len(value) > spec.max_items:
            raise invalid_request(
                f"Invalid array: {path} can have at most {spec.max_items} items", param=path
            )
        return [_check(spec.item, item, _name(path, i)) for i, item in enumerate(value)]
    errors: list[StripeError] = []
    for option in spec.options:
        try:
            return _check(option, value, path)
        except StripeError as exc:
            errors.append(exc)
    raise errors[-1]


def parse_decimal(value: Any, param: str) -> Decimal:
    """Parse a decimal written in plain notation; floats and exponents are refused."""
    if (
        isinstance(value, bool)
        or not isinstance(value, str | int)
        or not _DECIMAL.match(str(value))
    ):
        raise invalid_request(
            f"Invalid decimal: {value}", param=param, code="parameter_invalid_decimal"
        )
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:  # pragma: no cover - the pattern already excludes these
        raise invalid_request(f"Invalid decimal: {value}", param=param) from exc
