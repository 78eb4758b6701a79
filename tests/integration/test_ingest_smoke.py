"""The first things a user tries: ingest, retry, read back."""

from __future__ import annotations

import httpx

EVENT = {
    "metric": "api_calls",
    "customerRef": "cus_1",
    "quantity": 100,
    "ts": "2025-01-16T14:30:00Z",
}


async def test_an_event_sent_twice_is_counted_once(api: httpx.AsyncClient) -> None:
    """The second copy of an event without a key is a duplicate of the first."""
    first = await api.post("/v1/events/ingest", json={"events": [EVENT]})
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 1
    second = await api.post("/v1/events/ingest", json={"events": [EVENT]})
    assert second.json()["duplicates"] == 1
    assert second.json()["results"][0]["eventId"] == first.json()["results"][0]["eventId"]
