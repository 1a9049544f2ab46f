"""The gateway interface, and the built-in dev gateway implemented for real.

A gateway creates a checkout for a payment, verifies the notifications it
sends us, and refunds. The dev gateway is a local stand-in for a real one: its
pay page lives inside kaquan, its notifications are signed like a real
gateway's (`Kaquan-Dev-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`)
and verified by exactly the code path a real callback takes.
"""

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

from kaquan.payments.errors import InvalidSignature, MalformedCallback, StaleCallback

SIGNATURE_HEADER = "kaquan-dev-signature"
TOLERANCE_S = 300


@dataclass(frozen=True)
class Notification:
    """A verified statement from a gateway: this payment succeeded with this amount."""

    payment_token: str
    txn_id: str
    amount_minor: int
    currency: str


class Gateway(Protocol):
    name: str

    def checkout_url(self, payment_token: str) -> str: ...

    def verify(self, headers: dict[str, str], body: bytes) -> Notification: ...

    async def refund(self, payment_token: str, txn_id: str | None, amount_minor: int, currency: str) -> str: ...


class DevGateway:
    name = "dev"

    def __init__(self, secret: bytes, *, base_url: str = "") -> None:
        self._secret = secret
        self._base_url = base_url.rstrip("/")

    def checkout_url(self, payment_token: str) -> str:
        return f"{self._base_url}/pay/dev/{payment_token}"

    def sign(self, body: bytes, *, at: int | None = None) -> str:
        stamp = int(time.time()) if at is None else at
        mac = hmac.new(self._secret, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={stamp},v1={mac}"

    def notification(
        self, payment_token: str, amount_minor: int, currency: str, txn_id: str
    ) -> tuple[dict[str, str], bytes]:
        """What the dev gateway POSTs to kaquan when the buyer pays on its page."""
        body = json.dumps(
            {
                "payment": payment_token,
                "txn_id": txn_id,
                "amount_minor": amount_minor,
                "currency": currency,
                "status": "succeeded",
            },
            separators=(",", ":"),
        ).encode()
        return {SIGNATURE_HEADER: self.sign(body)}, body

    def verify(self, headers: dict[str, str], body: bytes) -> Notification:
        header = {k.lower(): v for k, v in headers.items()}.get(SIGNATURE_HEADER, "")
        parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        if "t" not in parts or "v1" not in parts or not parts["t"].isdigit():
            raise InvalidSignature("missing or malformed signature header")
        expected = hmac.new(self._secret, f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, parts["v1"]):
            raise InvalidSignature("the signature does not match the body")
        if abs(time.time() - int(parts["t"])) > TOLERANCE_S:
            raise StaleCallback("the callback is older than the replay window", tolerance_s=TOLERANCE_S)
        return _parse(body)

    async def refund(self, payment_token: str, txn_id: str | None, amount_minor: int, currency: str) -> str:
        return f"dev-refund-{payment_token}"


def _parse(body: bytes) -> Notification:
    try:
        data: dict[str, Any] = json.loads(body)
        if data.get("status") != "succeeded":
            raise MalformedCallback("only succeeded notifications are understood", status=data.get("status"))
        amount = data["amount_minor"]
        if type(amount) is not int:
            raise MalformedCallback("amount_minor must be an integer")
        return Notification(str(data["payment"]), str(data["txn_id"]), amount, str(data["currency"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise MalformedCallback("the callback body is not a valid notification") from None
