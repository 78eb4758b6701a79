"""Messages shown after an action redirects back (``?notice=…``); only these fixed texts appear."""

from __future__ import annotations

NOTICES = {
    "approved": "Event approved: it is now counted as an adjustment.",
    "dismissed": "Event dismissed: it stays in the ledger and is never counted.",
    "signed_out": "You are signed out.",
    "mapping_created": "Price mapping created.",
    "mapping_saved": "Price mapping saved.",
    "mapping_deactivated": "Mapping deactivated: no more pushes for it.",
    "mapping_activated": "Mapping activated.",
    "customer_saved": "Stripe customer id saved.",
    "customer_deleted": "Stripe customer mapping removed.",
    "key_revoked": "API key revoked. It stops working within seconds.",
    "metric_saved": "Metric settings saved.",
    "strict_saved": "Strict mode updated.",
    "reconciled": "Reconciliation ran: the rows below are what Stripe reports now.",
    "suggestion_applied": "Repair applied and re-verified against Stripe.",
    "adjustment_created": "Adjustment created. It counts once someone approves it.",
    "adjustment_approve": "Adjustment approved: counted and sent to Stripe.",
    "adjustment_reject": "Adjustment rejected: it is never counted.",
    "adjustment_revert": "Adjustment reverted: the counter no longer includes it.",
    "alert_acknowledged": "Alert acknowledged: no more notifications until it escalates.",
    "alert_snoozed": "Alert snoozed.",
    "alert_unsnoozed": "Snooze lifted.",
    "session_expired": "Your session ended (signed out, expired, or the key was revoked).",
}


def notice_text(code: str | None) -> str | None:
    """The message of a notice code (unknown codes show nothing)."""
    return NOTICES.get(code or "")
