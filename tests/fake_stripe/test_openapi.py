"""The fake's request rules cover every field, required flag, enum and length in Stripe's fragments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stripemeter.stripe.fake.schemas import SCHEMAS
from stripemeter.stripe.fake.validation import Arr, Obj, OneOf, Spec, Str

FRAGMENTS = {
    "post_v1_billing_meters.json": "POST /v1/billing/meters",
    "post_v1_billing_meter_events.json": "POST /v1/billing/meter_events",
    "post_v1_billing_meter_event_adjustments.json": "POST /v1/billing/meter_event_adjustments",
    "get_v1_billing_meters_id_event_summaries.json": "GET /v1/billing/meters/{id}/event_summaries",
    "post_v2_billing_meter_event_stream.json": "POST /v2/billing/meter_event_stream",
    "post_v2_billing_meter_events.json": "POST /v2/billing/meter_events",
    "post_v1_subscription_items_usage_records.LEGACY.json": "POST /v1/subscription_items/{id}/usage_records",
}


def _request_schema(fragment: dict[str, Any]) -> dict[str, Any]:
    """Return the fragment's request rules as one JSON-schema object."""
    if "parameters" in fragment:
        query = [p for p in fragment["parameters"] if p["in"] == "query"]
        return {
            "type": "object",
            "required": [p["name"] for p in query if p.get("required")],
            "properties": {p["name"]: p["schema"] for p in query},
        }
    if "requestBody" in fragment:
        content = fragment["requestBody"]["content"]
        schema: dict[str, Any] = next(iter(content.values()))["schema"]
        return schema
    legacy = next(v for k, v in fragment.items() if k.startswith("POST "))
    return dict(legacy["schema"])


def _strings(spec: Spec) -> list[Str]:
    if isinstance(spec, Str):
        return [spec]
    if isinstance(spec, OneOf):
        return [s for option in spec.options for s in _strings(option)]
    return []


def _compare(schema: dict[str, Any], spec: Spec, path: str, problems: list[str]) -> None:
    if "anyOf" in schema:
        for option in schema["anyOf"]:
            _compare(option, spec, path, problems)
        return
    if schema.get("type") == "object" and "properties" in schema:
        if not isinstance(spec, Obj):
            problems.append(f"{path}: expected an object rule")
            return
        missing_required = set(schema.get("required", [])) - spec.required
        if missing_required:
            problems.append(f"{path}: required not enforced: {sorted(missing_required)}")
        for name, sub in schema["properties"].items():
            if name not in spec.fields:
                problems.append(f"{path}.{name}: unknown to the fake")
            else:
                _compare(sub, spec.fields[name], f"{path}.{name}", problems)
        return
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        if not isinstance(spec, Arr):
            problems.append(f"{path}: expected an array rule")
            return
        _compare(schema["items"], spec.item, f"{path}[]", problems)
        return
    if "enum" in schema:
        enums = [set(s.enum) for s in _strings(spec) if s.enum]
        if set(schema["enum"]) not in enums:
            problems.append(f"{path}: enum {schema['enum']} not enforced")
    if "maxLength" in schema and schema["maxLength"] not in [s.max_length for s in _strings(spec)]:
        problems.append(f"{path}: maxLength {schema['maxLength']} not enforced")


@pytest.mark.parametrize(("filename", "endpoint"), sorted(FRAGMENTS.items()))
def test_fragment_rules_are_known(openapi_dir: Path, filename: str, endpoint: str) -> None:
    """Every property, required field, enum and maxLength of the fragment is in the fake's schema."""
    fragment = json.loads((openapi_dir / filename).read_text())
    problems: list[str] = []
    _compare(_request_schema(fragment), SCHEMAS[endpoint], endpoint, problems)
    assert problems == []


def test_every_request_fragment_is_checked(openapi_dir: Path) -> None:
    """No request fragment in the shared folder is left out of the comparison."""
    requests = {p.name for p in openapi_dir.glob("*.json") if p.name.startswith(("post_", "get_"))}
    assert requests - set(FRAGMENTS) == {
        "post_v2_billing_meter_event_session.json"
    }  # it has no body
