"""The Stripe simulator's events, built as Stripe builds them: the event envelope, signed `t=…,v1=…` with the
endpoint's `whsec_` secret, and the dispute a card's bank opens.

Nothing here talks HTTP: `sim_webhooks` posts what is built here.
"""

import json
from typing import Any

from kaquan.payments.stripe import protocol

API_VERSION = "2025-09-30.clover"


def signed_event(
    kind: str, obj: dict[str, Any], *, event_id: str, created: int, livemode: bool, secret: str
) -> tuple[dict[str, str], bytes]:
    """The headers and body of one webhook delivery of a `kind` event about `obj`, signed at `created`."""
    event = {
        "id": event_id,
        "object": "event",
        "api_version": API_VERSION,
        "created": created,
        "livemode": livemode,
        "pending_webhooks": 1,
        "type": kind,
        "data": {"object": json.loads(json.dumps(obj))},
    }
    body = json.dumps(event, ensure_ascii=False).encode()
    header = protocol.signature_header([secret], body, created)
    return {"content-type": "application/json; charset=utf-8", "stripe-signature": header}, body


def opened_dispute(
    charge: dict[str, Any], *, dispute_id: str, amount: int, reason: str, withdrawal: dict[str, Any], created: int
) -> dict[str, Any]:
    """A dispute the card's bank opened against `charge`: the amount and fee withdrawn (`withdrawal`)."""
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "currency": charge["currency"],
        "charge": charge["id"],
        "payment_intent": charge["payment_intent"],
        "reason": reason,
        "status": "needs_response",
        "is_charge_refundable": False,
        "balance_transactions": [withdrawal],
        "metadata": {},
        "created": created,
        "livemode": charge.get("livemode", False),
    }
