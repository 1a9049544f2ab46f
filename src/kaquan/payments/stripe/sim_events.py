"""The Stripe simulator's events, built as Stripe builds them: the event envelope, signed `t=…,v1=…` with the
endpoint's `whsec_` secret, and the dispute objects of a chargeback's life (opened, then won or lost).

Nothing here talks HTTP: `sim_webhooks` posts what is built here.
"""

import json
from typing import Any

from kaquan.payments.stripe import protocol

API_VERSION = "2025-09-30.clover"
DISPUTE_OUTCOMES = ("won", "lost", "warning_closed", "prevented")


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


def close_dispute(dispute: dict[str, Any], status: str, reinstatement: dict[str, Any] | None) -> None:
    """The bank's verdict: `won` gives the money back by a reinstating balance transaction (its `fee` negative:
    the part of the dispute fee Stripe returns), any other outcome moves nothing."""
    if status not in DISPUTE_OUTCOMES:
        raise ValueError(f"a dispute closes as one of {', '.join(DISPUTE_OUTCOMES)}, not {status!r}")
    if dispute["status"] in DISPUTE_OUTCOMES:
        raise ValueError(f"dispute {dispute['id']} is closed already ({dispute['status']})")
    dispute["status"] = status
    if reinstatement is not None:
        dispute["balance_transactions"].append(reinstatement)
