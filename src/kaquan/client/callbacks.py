"""Verifying kaquan's callbacks on the agent's side (Standard Webhooks, https://www.standardwebhooks.com)."""

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from .models import CallbackRejected, Order, order_from

_SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret


def verify_callback(secret: str, headers: Mapping[str, str], body: bytes, *, tolerance_s: int = 300) -> dict[str, Any]:
    """The event of a genuine, fresh callback; CallbackRejected for anything else.

    `secret` is the callback signing secret (`whsec_…`), `body` the raw request
    body exactly as received (not re-serialised JSON). Deduplicate the events you
    accept by their `webhook-id`: a callback may arrive more than once.
    """
    seen = {name.lower(): value for name, value in headers.items()}
    missing = [name for name in ("webhook-id", "webhook-timestamp", "webhook-signature") if not seen.get(name)]
    if missing:
        raise CallbackRejected("missing_header", f"missing {', '.join(missing)}")
    event_id, stamp = seen["webhook-id"], seen["webhook-timestamp"]
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > tolerance_s:
        raise CallbackRejected("timestamp_out_of_window", f"webhook-timestamp is not within {tolerance_s} s of now")
    try:
        key = base64.b64decode(secret.removeprefix(_SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("the callback secret must be whsec_ followed by base64") from None
    digest = hmac.new(key, f"{event_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    expected = base64.b64encode(digest)
    offered = [part.partition(",") for part in seen["webhook-signature"].split()]
    if not any(version == "v1" and hmac.compare_digest(expected, value.encode()) for version, _, value in offered):
        raise CallbackRejected("invalid_signature", "webhook-signature does not match the body")
    try:
        event = json.loads(body)
    except ValueError:
        raise CallbackRejected("bad_payload", "the body is not JSON") from None
    if not isinstance(event, dict):
        raise CallbackRejected("bad_payload", "the body is not a JSON object")
    return event


def _no_codes(value: str, order_no: str) -> str:
    raise CallbackRejected("bad_payload", f"the callback of order {order_no} carries codes; callbacks never do")


def callback_order(event: Mapping[str, Any]) -> Order:
    """The order an `order.*` event carries (`event["data"]["order"]`), as the Order the API answers (no codes).

    Its `status` and `out_order_no` are the order's when the event was sent; fetch
    the codes of an `order.delivered` event with `order(out_order_no)`.
    """
    try:
        return order_from(event["data"]["order"], _no_codes)
    except (KeyError, TypeError, ValueError):
        raise CallbackRejected("bad_payload", "the event carries no order") from None
