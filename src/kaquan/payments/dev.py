"""The built-in dev gateway: a local stand-in for a provider, implemented for real.

Its pay page lives inside kaquan (`/pay/dev/{token}`, only with
`KAQUAN_DEV_GATEWAY=1`), its notifications are signed like a real provider's
(`Kaquan-Dev-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`) and verified
by exactly the code path a real notification takes. It keeps no trade state of
its own: a query answers "pending" (the pay page notifies at once), and a
refund succeeds at once.
"""

import hashlib
import hmac
import json
import time
from typing import Any

from kaquan.payments.errors import InvalidSignature, MalformedCallback, StaleCallback
from kaquan.payments.gateway import (
    Acknowledgement,
    Notification,
    PayAction,
    PaymentRequest,
    RefundRequest,
    RefundResult,
    TradeState,
)

SIGNATURE_HEADER = "kaquan-dev-signature"
TOLERANCE_S = 300


class DevGateway:
    name: str = "dev"
    methods: tuple[str, ...] = ("page",)
    fee_rate_bp: int = 0
    fee_fixed_minor: int = 0
    keeps_fee_on_refund: bool = False

    def __init__(self, secret: bytes, *, base_url: str = "") -> None:
        self._secret = secret
        self._base_url = base_url.rstrip("/")

    async def create(self, request: PaymentRequest) -> PayAction:
        return PayAction(kind="redirect", url=self.pay_url(request.token))

    def pay_url(self, payment_token: str) -> str:
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

    def acknowledge(self, error_code: str | None) -> Acknowledgement:
        body = {"ok": True} if error_code is None else {"ok": False, "error": error_code}
        return Acknowledgement(200 if error_code is None else 400, json.dumps(body).encode(), "application/json")

    async def query(self, payment_token: str) -> TradeState:
        return TradeState(status="pending")

    async def close(self, payment_token: str) -> None:
        return None

    async def refund(self, request: RefundRequest) -> RefundResult:
        return RefundResult(status="succeeded", provider_ref=f"dev-refund-{request.refund_no}")

    async def query_refund(self, payment_token: str, refund_no: str) -> RefundResult:
        return RefundResult(status="succeeded", provider_ref=f"dev-refund-{refund_no}")


def _parse(body: bytes) -> Notification:
    try:
        data: dict[str, Any] = json.loads(body)
        if data.get("status") != "succeeded":
            raise MalformedCallback("only succeeded notifications are understood", status=data.get("status"))
        amount = data["amount_minor"]
        if type(amount) is not int:
            raise MalformedCallback("amount_minor must be an integer")
        return Notification(
            kind="paid",
            payment_token=str(data["payment"]),
            txn_id=str(data["txn_id"]),
            amount_minor=amount,
            currency=str(data["currency"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise MalformedCallback("the callback body is not a valid notification") from None
