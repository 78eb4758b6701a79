"""Notification delivery: signed webhooks retried with backoff, Slack, SMTP, failures kept and retried."""

from __future__ import annotations

import asyncio
import json
import time
from email import message_from_bytes
from typing import Any

import httpx
import pytest

from stripemeter.api.app import Services
from stripemeter.domain.alerts import SIGNATURE_HEADER, verify_signature
from stripemeter.domain.errors import InvalidInput
from stripemeter.services.alert_delivery import DeliveryError, SmtpConfig, check_destination
from stripemeter.services.alert_rules import parse_rule
from tests.alerts.conftest import create_rule, evaluate, ingest
from tests.alerts.receivers import SmtpSink, http_receiver

SECRET = "whsec_test_0123456789abcdef"


async def deliveries(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """The tenant's deliveries, newest first."""
    response = await api.get("/v1/alerts/deliveries", params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def wait_for(api: httpx.AsyncClient, status: str, count: int = 1) -> list[dict[str, Any]]:
    """Poll until ``count`` deliveries have ``status`` (at most a few seconds)."""
    for _ in range(200):
        found = await deliveries(api, status=status)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.025)
    raise AssertionError(f"no {status} delivery; have {await deliveries(api)}")


async def fire(api: httpx.AsyncClient, channels: list[dict[str, Any]]) -> None:
    """Create a rule with these channels and make it trigger."""
    await create_rule(
        api, type="usage_threshold", metric="api_calls", thresholds=[10], channels=channels
    )
    await ingest(api, "api_calls", "cus_1", 50)
    await evaluate(api)


async def test_a_webhook_is_retried_until_delivered_and_signed(api: httpx.AsyncClient) -> None:
    """Two 500s then a 200: three attempts, one delivery, each body signed with the secret."""
    with http_receiver([500, 503]) as receiver:
        await fire(api, [{"type": "webhook", "url": receiver.url + "/hook", "secret": SECRET}])
        [delivered] = await wait_for(api, "delivered")
    assert delivered["attempts"] == 3
    assert delivered["responseCode"] == 200
    assert delivered["target"] == receiver.url + "/hook"
    assert len(receiver.requests) == 3
    for path, headers, body in receiver.requests:
        assert path == "/hook"
        assert verify_signature(SECRET, headers[SIGNATURE_HEADER], body, now=int(time.time()))
        assert not verify_signature(
            SECRET, headers[SIGNATURE_HEADER], body + b" ", now=int(time.time())
        )
    payload = json.loads(receiver.requests[-1][2])
    assert payload["type"] == "alert.triggered"
    assert payload["alert"]["customerRef"] == "cus_1"
    assert (payload["alert"]["value"], payload["alert"]["threshold"]) == ("50", "10")
    assert receiver.requests[0][2] == receiver.requests[-1][2]  # the same notification each time


async def test_a_failing_webhook_is_kept_as_failed_and_can_be_retried(
    api: httpx.AsyncClient,
) -> None:
    """After the last attempt the delivery shows failed with the error; a retry delivers it."""
    with http_receiver([500, 500, 500]) as receiver:
        await fire(api, [{"type": "webhook", "url": receiver.url, "secret": SECRET}])
        [failed] = await wait_for(api, "failed")
        assert (failed["attempts"], failed["lastError"], failed["responseCode"]) == (
            3,
            "HTTP 500",
            500,
        )
        history = (await api.get("/v1/alerts/events")).json()["data"]
        assert [e["transition"] for e in history] == ["triggered"]  # the alert itself stands
        retried = await api.post(f"/v1/alerts/deliveries/{failed['id']}/retry")
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] in ("pending", "delivered")
        [delivered] = await wait_for(api, "delivered")
    assert delivered["id"] == failed["id"]
    assert len(receiver.requests) == 4
    again = await api.post(f"/v1/alerts/deliveries/{failed['id']}/retry")
    assert again.status_code == 400


async def test_slack_gets_a_text_message(api: httpx.AsyncClient) -> None:
    """A Slack-compatible incoming webhook receives ``{"text": …}`` naming rule, customer and value."""
    with http_receiver() as receiver:
        await fire(api, [{"type": "slack", "url": receiver.url + "/slack"}])
        await wait_for(api, "delivered")
    [(_, headers, body)] = receiver.requests
    text = json.loads(body)["text"]
    assert "triggered" in text
    assert "cus_1" in text
    assert "value 50" in text
    assert SIGNATURE_HEADER not in headers


async def test_email_goes_through_the_configured_smtp_server(
    api: httpx.AsyncClient, app_services: Services
) -> None:
    """An e-mail channel sends one message per notification to the SMTP server configured."""
    sink = SmtpSink()
    await sink.start()
    try:
        app_services.alerts.deliverer.smtp = SmtpConfig(
            host="127.0.0.1", port=sink.port, sender="alerts@example.com", starttls=False
        )
        await fire(api, [{"type": "email", "to": ["ops@example.com", "cto@example.com"]}])
        await wait_for(api, "delivered")
    finally:
        await sink.stop()
    [(sender, recipients, raw)] = sink.messages
    assert sender == "<alerts@example.com>"
    assert recipients == ["<ops@example.com>", "<cto@example.com>"]
    message = message_from_bytes(raw)
    assert "triggered" in message["Subject"]
    assert "cus_1" in message.get_payload()


async def test_email_without_smtp_fails_visibly_and_is_retried(api: httpx.AsyncClient) -> None:
    """With no SMTP server configured the delivery is retried, then shown as failed with why."""
    await fire(api, [{"type": "email", "to": "ops@example.com"}])
    [failed] = await wait_for(api, "failed")
    assert failed["attempts"] == 3
    assert "STRIPEMETER_SMTP_HOST" in failed["lastError"]


async def test_private_targets_are_refused_unless_allowed() -> None:
    """Loopback, private and link-local hosts are refused at creation and at delivery (SSRF)."""
    for url in (
        "http://127.0.0.1/x",
        "http://10.0.0.8/x",
        "http://169.254.169.254/",
        "http://localhost/",
    ):
        body = {"name": "r", "type": "held_events", "thresholds": [1],
                "channels": [{"type": "webhook", "url": url}]}  # fmt: skip
        with pytest.raises(InvalidInput) as caught:
            parse_rule(body, allow_private=False)
        assert caught.value.code == "private_target"
        parse_rule(body, allow_private=True)
    with pytest.raises(DeliveryError):
        await check_destination("http://localhost:9/", allow_private=False)
    with pytest.raises(DeliveryError):
        await check_destination("http://[::1]:9/", allow_private=False)
    await check_destination("http://127.0.0.1:9/", allow_private=True)


async def test_deliveries_never_leak_the_webhook_secret(api: httpx.AsyncClient) -> None:
    """Rules and deliveries show whether a secret is set, never the secret itself."""
    with http_receiver() as receiver:
        await fire(api, [{"type": "webhook", "url": receiver.url, "secret": SECRET}])
        await wait_for(api, "delivered")
    listed = (await api.get("/v1/alerts")).text + (await api.get("/v1/alerts/deliveries")).text
    assert SECRET not in listed
    assert (await api.get("/v1/alerts")).json()["data"][0]["channels"][0]["hasSecret"] is True
