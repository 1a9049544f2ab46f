"""The Alipay adapter: kaquan's gateway interface on Alipay's open platform (RSA2, gateway.do).

PC page pay and mobile web pay are signed URLs the buyer's browser opens (no
call to Alipay until the buyer arrives there); QR pay (当面付) pre-creates the
trade and shows its `qr_code`. Every answer from the gateway is checked
against Alipay's public key before it is believed.
"""

import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from kaquan.kit import clock
from kaquan.payments import plugins
from kaquan.payments.alipay import protocol
from kaquan.payments.alipay.protocol import ProtocolError
from kaquan.payments.errors import (
    GatewayFailed,
    GatewayRefused,
    InvalidSignature,
    MalformedCallback,
    MethodNotOffered,
    NotificationMismatch,
    StaleCallback,
)
from kaquan.payments.gateway import (
    Acknowledgement,
    Ignored,
    Notification,
    PayAction,
    PaymentRequest,
    RefundRequest,
    RefundResult,
    TradeState,
)

log = logging.getLogger(__name__)

NAME = "alipay"
METHODS = ("page", "wap", "qr")
CURRENCY = "CNY"
# Alipay retries an unanswered notification 8 times over 25 hours (4m, 10m, 10m, 1h, 2h, 6h, 15h).
NOTIFY_HORIZON = timedelta(hours=25)
NOTIFY_AHEAD = timedelta(minutes=10)  # clock skew tolerated for a notification "sent" in our future
SUBJECT_MAX = 256
_SUBJECT_FORBIDDEN = re.compile(r"[/=&]")  # Alipay: "不可使用特殊字符，如 /，=，& 等"
PRODUCT_CODES = {"page": "FAST_INSTANT_TRADE_PAY", "wap": "QUICK_WAP_WAY"}
TRADE_STATES = {
    "WAIT_BUYER_PAY": "pending",
    "TRADE_SUCCESS": "paid",
    "TRADE_FINISHED": "paid",
    "TRADE_CLOSED": "closed",
}


@dataclass(frozen=True)
class AlipayConfig:
    """A merchant's Alipay application: its ids, its private key and Alipay's public key."""

    app_id: str
    seller_id: str  # the merchant's PID (2088…): every notification must be about this account
    private_key: rsa.RSAPrivateKey = field(repr=False)
    alipay_public_key: rsa.RSAPublicKey = field(repr=False)
    gateway_url: str = protocol.DEFAULT_GATEWAY_URL
    fee_rate_bp: int = 60
    methods: tuple[str, ...] = METHODS


class AlipayGateway:
    name = NAME
    fee_fixed_minor = 0  # Alipay charges a rate only
    keeps_fee_on_refund = False  # and gives back its share of the fee with a refund

    def __init__(
        self, config: AlipayConfig, setup: plugins.GatewaySetup, *, now: Callable[[], datetime] = clock.now
    ) -> None:
        unknown = set(config.methods) - set(METHODS)
        if unknown or not config.methods:
            raise ValueError(f"Alipay methods are among {METHODS}, not {config.methods}")
        self.config = config
        self.methods = config.methods
        self.fee_rate_bp = config.fee_rate_bp
        self._setup = setup
        self._now = now
        parts = urlsplit(config.gateway_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"

    # --- paying ------------------------------------------------------------------------------

    async def create(self, request: PaymentRequest) -> PayAction:
        if request.method not in self.methods:
            raise MethodNotOffered(f"Alipay here offers {', '.join(self.methods)}", method=request.method)
        _require_cny(request.currency)
        if request.amount_minor < 1:
            raise GatewayRefused("Alipay takes amounts from 0.01 yuan", amount_minor=request.amount_minor)
        content: dict[str, Any] = {
            "out_trade_no": request.token,
            "total_amount": protocol.yuan(request.amount_minor),
            "subject": _subject(request.subject),
        }
        if request.method == "qr":
            left = request.expires_at - self._now()
            content["timeout_express"] = f"{max(1, int(left.total_seconds()) // 60)}m"
            answer = await self._call("alipay.trade.precreate", content, notify_url=request.notify_url)
            qr = answer.get("qr_code")
            if not isinstance(qr, str) or not qr:
                raise GatewayFailed("Alipay pre-created the trade without a QR code", token=request.token)
            return PayAction(kind="qr", qr=qr)
        content["product_code"] = PRODUCT_CODES[request.method]
        content["time_expire"] = protocol.china_time(request.expires_at)
        if request.method == "wap":
            content["quit_url"] = request.return_url
        method = "alipay.trade.page.pay" if request.method == "page" else "alipay.trade.wap.pay"
        params = self._signed(method, content, notify_url=request.notify_url, return_url=request.return_url)
        return PayAction(kind="redirect", url=f"{self.config.gateway_url}?{urlencode(params)}")

    # --- notifications -----------------------------------------------------------------------

    def verify(self, headers: dict[str, str], body: bytes) -> Notification | Ignored:
        params = _form(body)
        if not protocol.verify_notification(params, self.config.alipay_public_key):
            raise InvalidSignature("the notification's RSA2 signature does not verify with Alipay's public key")
        return read_notification(params, self.config, self._now())

    def acknowledge(self, error_code: str | None) -> Acknowledgement:
        # Alipay stops retrying only on the bare text "success"; anything else is retried for 25 hours.
        if error_code is None:
            return Acknowledgement(200, b"success", "text/plain")
        return Acknowledgement(400, b"fail", "text/plain")

    # --- asking Alipay -----------------------------------------------------------------------

    async def query(self, payment_token: str) -> TradeState:
        answer = await self._call("alipay.trade.query", {"out_trade_no": payment_token}, refusals_pass=True)
        if answer.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            # page and WAP trades exist at Alipay only once the buyer opened the cashier
            return TradeState(status="not_found")
        _refuse_unless_ok(answer)
        status = TRADE_STATES.get(str(answer.get("trade_status")))
        if status is None:
            raise GatewayFailed("Alipay answered a trade status kaquan does not know", answer=_public(answer))
        return TradeState(
            status=status,  # type: ignore[arg-type]  # the values of TRADE_STATES are TradeStatus
            amount_minor=_amount(answer, "total_amount", GatewayFailed),
            currency=CURRENCY,
            txn_id=_text(answer.get("trade_no")),
            payer=_text(answer.get("buyer_user_id") or answer.get("buyer_open_id")),
        )

    async def close(self, payment_token: str) -> None:
        answer = await self._call("alipay.trade.close", {"out_trade_no": payment_token}, refusals_pass=True)
        if answer.get("code") == protocol.SUCCESS_CODE or answer.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return  # closed now, or never opened: a signed URL dies at its time_expire anyway
        # Alipay says ACQ.TRADE_STATUS_ERROR for "closed already" and for "paid": only the first is a closed trade
        if answer.get("sub_code") == "ACQ.TRADE_STATUS_ERROR" and (await self.query(payment_token)).status == "closed":
            return
        _refuse_unless_ok(answer)

    async def refund(self, request: RefundRequest) -> RefundResult:
        _require_cny(request.currency)
        content: dict[str, Any] = {
            "out_trade_no": request.payment_token,
            "refund_amount": protocol.yuan(request.amount_minor),
            "out_request_no": request.refund_no,
            "refund_reason": request.reason[:SUBJECT_MAX],
        }
        if request.txn_id:
            content["trade_no"] = request.txn_id
        answer = await self._call("alipay.trade.refund", content)
        # Alipay refunds synchronously: a "10000" is money on its way back; the same out_request_no
        # again answers the first refund (fund_change "N") and pays nothing twice.
        return RefundResult(status="succeeded", provider_ref=_text(answer.get("trade_no")))

    async def query_refund(self, payment_token: str, refund_no: str) -> RefundResult:
        content = {"out_trade_no": payment_token, "out_request_no": refund_no, "query_options": ["gmt_refund_pay"]}
        answer = await self._call("alipay.trade.fastpay.refund.query", content, refusals_pass=True)
        if answer.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return RefundResult(status="failed", detail="Alipay has no such trade, so no refund of it")
        _refuse_unless_ok(answer)
        if not answer.get("refund_amount") and not answer.get("out_request_no"):
            # Alipay's documented meaning of an empty answer: it never received this refund
            return RefundResult(status="failed", detail="Alipay has no refund with this number")
        if answer.get("refund_status") in (None, "", "REFUND_SUCCESS"):
            return RefundResult(status="succeeded", provider_ref=_text(answer.get("trade_no")))
        return RefundResult(status="processing", provider_ref=_text(answer.get("trade_no")))

    async def download_bill(self, day: date) -> bytes:
        """The day's trade bill (业务明细), as Alipay serves it: a zip of GBK CSV files (see `bill.read_bill`)."""
        content = {"bill_type": "trade", "bill_date": day.isoformat()}
        answer = await self._call("alipay.data.dataservice.bill.downloadurl.query", content)
        url = answer.get("bill_download_url")
        if not isinstance(url, str) or not url:
            raise GatewayFailed("Alipay gave no bill download URL", day=day.isoformat())
        parts = urlsplit(url)
        async with plugins.http_client(self._setup, f"{parts.scheme}://{parts.netloc}", timeout_s=60.0) as client:
            response = await _send(client.get(url), what="the bill download")
        if response.status_code != 200:
            raise GatewayFailed("Alipay's bill download failed", status=response.status_code)
        return response.content

    # --- the wire ----------------------------------------------------------------------------

    def _signed(
        self, method: str, content: Mapping[str, Any], *, notify_url: str = "", return_url: str = ""
    ) -> dict[str, str]:
        return protocol.signed_request(
            app_id=self.config.app_id,
            method=method,
            content=content,
            key=self.config.private_key,
            at=self._now(),
            notify_url=notify_url,
            return_url=return_url,
        )

    async def _call(
        self, method: str, content: Mapping[str, Any], *, notify_url: str = "", refusals_pass: bool = False
    ) -> dict[str, Any]:
        """One gateway call: its signed answer's body, or GatewayFailed / GatewayRefused.

        With `refusals_pass`, a verified business refusal comes back for the caller to read its sub_code.
        """
        params = self._signed(method, content, notify_url=notify_url)
        async with plugins.http_client(self._setup, self._origin) as client:
            response = await _send(
                client.post(
                    self.config.gateway_url,
                    params={"charset": "utf-8"},
                    content=urlencode(params),
                    headers={"content-type": "application/x-www-form-urlencoded;charset=utf-8"},
                ),
                what=method,
            )
        if response.status_code >= 500:
            raise GatewayFailed(f"Alipay answered HTTP {response.status_code}", method=method)
        if response.status_code != 200:
            raise GatewayFailed(f"the Alipay gateway answered HTTP {response.status_code}", method=method)
        try:
            answer = protocol.read_response(response.content.decode("utf-8"), method)
        except (UnicodeDecodeError, ProtocolError) as exc:
            raise GatewayFailed("Alipay's answer could not be read", method=method, reason=str(exc)) from None
        if answer.sign is not None:
            if not protocol.verify(answer.raw, answer.sign, self.config.alipay_public_key):
                raise GatewayFailed("Alipay's answer does not carry Alipay's signature", method=method)
        elif answer.ok or answer.code == "40004":
            # Alipay signs every success and every business refusal; only gateway-level errors come unsigned
            raise GatewayFailed("Alipay's answer is unsigned", method=method)
        body = answer.body
        if answer.code == protocol.UNAVAILABLE_CODE or str(body.get("sub_code", "")).endswith("SYSTEM_ERROR"):
            raise GatewayFailed("Alipay is unavailable; retry the same request", method=method, **_codes(body))
        if not refusals_pass:
            _refuse_unless_ok(body)
        return body


async def _send(request: Awaitable[httpx.Response], *, what: str) -> httpx.Response:
    try:
        response = await request
    except httpx.TimeoutException:
        raise GatewayFailed(f"Alipay did not answer {what} in time", reason="timeout") from None
    except httpx.TransportError as exc:
        raise GatewayFailed(f"Alipay could not be reached for {what}", reason=type(exc).__name__) from None
    return response


def _refuse_unless_ok(body: Mapping[str, Any]) -> None:
    if body.get("code") != protocol.SUCCESS_CODE:
        message = str(body.get("sub_msg") or body.get("msg") or "Alipay refused the request")
        raise GatewayRefused(message, **_codes(body))


def _codes(body: Mapping[str, Any]) -> dict[str, str]:
    return {name: str(body[name]) for name in ("code", "msg", "sub_code", "sub_msg") if body.get(name)}


def _public(body: Mapping[str, Any]) -> dict[str, str]:
    return {name: str(body[name]) for name in ("code", "trade_status", "out_trade_no") if name in body}


def _require_cny(currency: str) -> None:
    if currency != CURRENCY:
        raise GatewayRefused("Alipay takes payments in CNY only", currency=currency)


def _subject(subject: str) -> str:
    return _SUBJECT_FORBIDDEN.sub(" ", subject).strip()[:SUBJECT_MAX] or "订单"


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _amount(body: Mapping[str, Any], name: str, error: type[GatewayFailed] | type[MalformedCallback]) -> int:
    try:
        return protocol.fen(str(body[name]))
    except (KeyError, ProtocolError):
        raise error(f"Alipay's {name} is missing or not an amount", field=name) from None


def _form(body: bytes) -> dict[str, str]:
    """A notification's form body as parameters; one value per name, UTF-8 (the charset kaquan asks for)."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise MalformedCallback("the notification is not a UTF-8 form body") from None
    params = dict(pairs)
    if not params:
        raise MalformedCallback("the notification is empty")
    if len(params) != len(pairs):
        raise MalformedCallback("a notification parameter appears twice")
    if params.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
        raise MalformedCallback("kaquan asks Alipay for UTF-8 notifications", charset=params["charset"])
    return params


def read_notification(params: Mapping[str, str], config: AlipayConfig, now: datetime) -> Notification | Ignored:
    """A notification whose signature was verified, checked for whose it is and how old, in kaquan's words.

    For a refund, `amount_minor` is Alipay's `refund_fee`: the trade's refunded total so far, not this refund's.
    """
    if params.get("notify_type") != "trade_status_sync":
        raise MalformedCallback("not a trade status notification", notify_type=params.get("notify_type"))
    token = params.get("out_trade_no", "")
    status = params.get("trade_status", "")
    if not token or not params.get("notify_id"):
        raise MalformedCallback("the notification names no trade")
    if not hmac.compare_digest(params.get("app_id", ""), config.app_id):
        raise NotificationMismatch("the notification is for another Alipay application", app_id=params.get("app_id"))
    if not hmac.compare_digest(params.get("seller_id", ""), config.seller_id):
        raise NotificationMismatch("the notification is for another Alipay merchant", seller_id=params.get("seller_id"))
    for name in ("currency", "trans_currency"):
        if params.get(name, CURRENCY) != CURRENCY:
            raise NotificationMismatch("Alipay trades here are in CNY only", currency=params[name])
    try:
        sent_at = protocol.parse_china_time(params.get("notify_time", ""))
    except ProtocolError:
        raise MalformedCallback("the notification has no readable notify_time") from None
    if now - sent_at > NOTIFY_HORIZON or sent_at - now > NOTIFY_AHEAD:
        raise StaleCallback(
            "the notification is outside Alipay's 25-hour retry window",
            notify_time=params["notify_time"],
            tolerance_s=int(NOTIFY_HORIZON.total_seconds()),
        )
    common: dict[str, Any] = {
        "payment_token": token,
        "currency": CURRENCY,
        "txn_id": params.get("trade_no") or None,
        "payer": params.get("buyer_id") or params.get("buyer_open_id") or None,
    }
    refunded = bool(params.get("refund_fee") or params.get("gmt_refund"))
    if status == "TRADE_FINISHED" or (status == "TRADE_SUCCESS" and not refunded):
        return Notification(kind="paid", amount_minor=_amount(params, "total_amount", MalformedCallback), **common)
    if status in ("TRADE_SUCCESS", "TRADE_CLOSED") and refunded:
        return Notification(
            kind="refund",
            amount_minor=_amount(params, "refund_fee", MalformedCallback),
            refund_no=params.get("out_biz_no") or None,
            refund_status="succeeded",
            **common,
        )
    if status == "TRADE_CLOSED":
        return Notification(kind="closed", amount_minor=_amount(params, "total_amount", MalformedCallback), **common)
    if status == "WAIT_BUYER_PAY":  # sent when a merchant switches it on; the trade is open, nothing to do
        return Ignored(status, payment_token=token)
    raise MalformedCallback("a trade status Alipay does not send", trade_status=status)
