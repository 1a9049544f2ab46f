"""The WeChat Pay API v3 adapter: kaquan's payments in WeChat Pay's words, over httpx.

Every request is signed with the merchant key; every answer and notification
must carry a valid platform signature before a word of it is believed. An
answer that is not signed is a failed call (retried later), never a fact.
"""

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast
from urllib.parse import quote, urlencode, urlsplit

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import rsa

from kaquan.kit import clock
from kaquan.payments import plugins
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
    Notification,
    PayAction,
    PaymentRequest,
    RefundRequest,
    RefundResult,
    RefundStatus,
    TradeState,
    TradeStatus,
)
from kaquan.payments.wechatpay import protocol

NAME = "wechatpay"
METHODS = ("native", "h5", "jsapi")
CURRENCY = "CNY"  # domestic WeChat Pay settles in renminbi only
DEFAULT_BASE_URL = "https://api.mch.weixin.qq.com"

# trade_state -> kaquan's view. REFUND is a trade that was paid and then (partly) refunded; PAYERROR lets
# the buyer try again with another card, so the trade is still open until it expires or is closed.
TRADE_STATES: dict[str, TradeStatus] = {
    "SUCCESS": "paid",
    "REFUND": "paid",
    "NOTPAY": "pending",
    "USERPAYING": "pending",
    "PAYERROR": "pending",
    "CLOSED": "closed",
    "REVOKED": "closed",
}
# ABNORMAL: the money could not reach the buyer's card and waits for the merchant to act: failed for kaquan.
REFUND_STATES: dict[str, RefundStatus] = {
    "SUCCESS": "succeeded",
    "PROCESSING": "processing",
    "CLOSED": "failed",
    "ABNORMAL": "failed",
}


@dataclass(frozen=True)
class Merchant:
    """The merchant's WeChat Pay identity and keys; the secrets stay out of every repr."""

    mchid: str
    appid: str
    serial_no: str  # the merchant API certificate's serial: names the key that signs requests
    private_key: rsa.RSAPrivateKey = field(repr=False)
    apiv3_key: bytes = field(repr=False)
    platform_keys: dict[str, rsa.RSAPublicKey] = field(repr=False)  # by Wechatpay-Serial

    def __post_init__(self) -> None:
        if len(self.apiv3_key) != protocol.APIV3_KEY_BYTES:
            raise ValueError("the APIv3 key is 32 bytes")
        if not self.platform_keys:
            raise ValueError("at least one platform public key or certificate is needed")


class WechatPayGateway:
    name = NAME

    def __init__(
        self,
        merchant: Merchant,
        setup: plugins.GatewaySetup,
        *,
        base_url: str = DEFAULT_BASE_URL,
        methods: tuple[str, ...] = METHODS,
        fee_rate_bp: int = 60,
        timeout_s: float = 10.0,
        now: Callable[[], datetime] = clock.now,
    ) -> None:
        unknown = set(methods) - set(METHODS)
        if unknown or not methods:
            raise ValueError(f"WeChat Pay methods are {', '.join(METHODS)}; got {', '.join(methods) or 'none'}")
        self.merchant = merchant
        self.methods = methods
        self.fee_rate_bp = fee_rate_bp
        self.fee_fixed_minor = 0  # WeChat Pay charges a rate only
        self.keeps_fee_on_refund = False  # and gives back its share of the fee with a refund
        self._setup = setup
        self._base_url = base_url.rstrip("/")
        self._timeout_s = timeout_s
        self._now = now

    # --- paying -----------------------------------------------------------------

    async def create(self, request: PaymentRequest) -> PayAction:
        if request.method not in self.methods:
            raise MethodNotOffered(f"WeChat Pay here offers {', '.join(self.methods)}", method=request.method)
        if request.currency != CURRENCY:
            raise GatewayRefused("WeChat Pay takes CNY only", currency=request.currency)
        order: dict[str, Any] = {
            "appid": self.merchant.appid,
            "mchid": self.merchant.mchid,
            "description": request.subject[:127],
            "out_trade_no": request.token,
            "time_expire": protocol.rfc3339(request.expires_at),
            "attach": request.order_number[:128],
            "notify_url": request.notify_url,
            "amount": {"total": request.amount_minor, "currency": CURRENCY},
        }
        if request.method == "h5":
            if not request.client_ip:
                raise GatewayRefused("WeChat Pay H5 needs the payer's IP address")
            order["scene_info"] = {"payer_client_ip": request.client_ip, "h5_info": {"type": "Wap"}}
        if request.method == "jsapi":
            if not request.payer_id:
                raise GatewayRefused("WeChat Pay JSAPI needs the payer's openid")
            order["payer"] = {"openid": request.payer_id}
        answer = await self._call("POST", f"/v3/pay/transactions/{request.method}", body=order)
        if request.method == "native":
            return PayAction(kind="qr", qr=_text(answer, "code_url"))
        if request.method == "h5":
            # WeChat Pay sends the buyer back to `redirect_url`, which the merchant appends itself
            url = f"{_text(answer, 'h5_url')}&redirect_url={quote(request.return_url, safe='')}"
            return PayAction(kind="redirect", url=url)
        prepay_id = _text(answer, "prepay_id")
        return PayAction(kind="jsapi", fields=self.bridge_fields(prepay_id), provider_ref=prepay_id)

    def bridge_fields(self, prepay_id: str, *, nonce: str | None = None) -> dict[str, str]:
        """The parameters of WeixinJSBridge `getBrandWCPayRequest`, signed with the merchant key."""
        stamp = str(int(self._now().timestamp()))
        nonce_str = nonce or protocol.new_nonce()
        package = f"prepay_id={prepay_id}"
        message = protocol.jsapi_message(self.merchant.appid, stamp, nonce_str, package)
        return {
            "appId": self.merchant.appid,
            "timeStamp": stamp,
            "nonceStr": nonce_str,
            "package": package,
            "signType": "RSA",
            "paySign": protocol.rsa_sign(self.merchant.private_key, message),
        }

    async def query(self, payment_token: str) -> TradeState:
        try:
            answer = await self._call(
                "GET",
                f"/v3/pay/transactions/out-trade-no/{quote(payment_token)}",
                params={"mchid": self.merchant.mchid},
            )
        except GatewayRefused as refused:
            if refused.details.get("code") == "ORDER_NOT_EXIST":
                return TradeState(status="not_found")
            raise
        state = _text(answer, "trade_state")
        status = TRADE_STATES.get(state)
        if status is None:
            raise GatewayFailed("WeChat Pay answered a trade state kaquan does not know", trade_state=state)
        amount = answer.get("amount") or {}
        payer = answer.get("payer") or {}
        return TradeState(
            status=status,
            amount_minor=_answered_fen(amount.get("total")) if "total" in amount else None,
            currency=amount.get("currency"),
            txn_id=answer.get("transaction_id"),
            payer=payer.get("openid"),
        )

    async def close(self, payment_token: str) -> None:
        """Make the trade unpayable. A trade WeChat Pay never opened is as closed as it gets."""
        path = f"/v3/pay/transactions/out-trade-no/{quote(payment_token)}/close"
        try:
            await self._call("POST", path, body={"mchid": self.merchant.mchid})
        except GatewayRefused as refused:
            if refused.details.get("code") != "ORDER_NOT_EXIST":
                raise

    # --- refunds ------------------------------------------------------------------

    async def refund(self, request: RefundRequest) -> RefundResult:
        if request.currency != CURRENCY:
            raise GatewayRefused("WeChat Pay refunds CNY only", currency=request.currency)
        body: dict[str, Any] = {
            "out_trade_no": request.payment_token,
            "out_refund_no": request.refund_no,
            "notify_url": request.notify_url,
            "amount": {"refund": request.amount_minor, "total": request.total_minor, "currency": CURRENCY},
        }
        if request.reason:
            body["reason"] = request.reason[:80]
        return _refund_result(await self._call("POST", "/v3/refund/domestic/refunds", body=body))

    async def query_refund(self, payment_token: str, refund_no: str) -> RefundResult:
        answer = await self._call("GET", f"/v3/refund/domestic/refunds/{quote(refund_no)}")
        if answer.get("out_trade_no") != payment_token:
            raise GatewayRefused("this refund number belongs to another payment", refund_no=refund_no)
        return _refund_result(answer)

    # --- bills ----------------------------------------------------------------------

    async def download_bill(self, day: date) -> bytes:
        """The day's ALL trade bill (交易账单), checked against the SHA1 the platform signed."""
        answer = await self._call(
            "GET", "/v3/bill/tradebill", params={"bill_date": day.isoformat(), "bill_type": "ALL"}
        )
        download_url, hash_value = _text(answer, "download_url"), _text(answer, "hash_value")
        if answer.get("hash_type", "SHA1") != "SHA1":
            raise GatewayFailed("the bill's hash type is not SHA1", hash_type=answer.get("hash_type"))
        # the file itself comes unsigned: the signed SHA1 above is what vouches for it
        response = await self._send("GET", download_url, body=None, params=None)
        if response.status_code != 200:
            raise _error_of(response)
        if not hmac.compare_digest(hashlib.sha1(response.content).hexdigest(), hash_value.lower()):  # noqa: S324
            raise GatewayFailed("the downloaded bill does not match its hash", day=day.isoformat())
        return response.content

    # --- notifications --------------------------------------------------------------

    def verify(self, headers: dict[str, str], body: bytes) -> Notification:
        signed = protocol.read_platform_signature(headers)
        if signed is None:
            raise InvalidSignature("the notification has no WeChat Pay signature headers")
        if signed.serial not in self.merchant.platform_keys:
            raise InvalidSignature("the notification is signed by an unknown platform key", serial=signed.serial)
        if not protocol.platform_verify(self.merchant.platform_keys, signed, body):
            raise InvalidSignature("the signature does not match the notification")
        if not signed.timestamp.isdigit():
            raise InvalidSignature("the signature timestamp is not a number")
        if abs(self._now().timestamp() - int(signed.timestamp)) > protocol.TOLERANCE_S:
            raise StaleCallback("the notification is older than the replay window", tolerance_s=protocol.TOLERANCE_S)
        event, resource = self._open(body)
        if event.startswith("TRANSACTION."):
            return self._payment(event, resource)
        if event.startswith("REFUND."):
            return self._refund(event, resource)
        raise MalformedCallback("kaquan does not handle this WeChat Pay event", event_type=event)

    def acknowledge(self, error_code: str | None) -> Acknowledgement:
        # any answer but 2xx makes WeChat Pay send the notification again, on its own schedule
        if error_code is None:
            return Acknowledgement(200, _json({"code": "SUCCESS", "message": "成功"}), "application/json")
        return Acknowledgement(400, _json({"code": "FAIL", "message": error_code}), "application/json")

    def _open(self, body: bytes) -> tuple[str, dict[str, Any]]:
        """The event type and the decrypted resource of a signed notification."""
        try:
            envelope = json.loads(body)
            event = str(envelope["event_type"])
            encrypted = envelope["resource"]
            if envelope.get("resource_type") != "encrypt-resource" or not isinstance(encrypted, dict):
                raise MalformedCallback("the notification carries no encrypted resource")
            plaintext = protocol.decrypt_resource(self.merchant.apiv3_key, encrypted)
        except InvalidTag:
            # signed by the platform, yet not sealed under our APIv3 key: another merchant's notification
            # replayed to us, or our APIv3 key is wrong. Either way nothing in it is authenticated for us.
            raise InvalidSignature("the resource does not decrypt under this merchant's APIv3 key") from None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise MalformedCallback("the notification body is not a WeChat Pay notification") from None
        try:
            resource = json.loads(plaintext)
        except ValueError:
            raise MalformedCallback("the decrypted resource is not JSON") from None
        if not isinstance(resource, dict):
            raise MalformedCallback("the decrypted resource is not an object")
        return event, resource

    def _payment(self, event: str, resource: dict[str, Any]) -> Notification:
        try:
            if event != "TRANSACTION.SUCCESS" or resource["trade_state"] != "SUCCESS":
                raise MalformedCallback("only successful payments are notified", event_type=event)
            self._same_merchant(resource["mchid"], appid=resource["appid"])
            amount = resource["amount"]
            if amount["currency"] != CURRENCY:
                raise NotificationMismatch("the payment is not in CNY", currency=amount["currency"])
            return Notification(
                kind="paid",
                payment_token=str(resource["out_trade_no"]),
                amount_minor=_fen(amount["total"]),
                currency=CURRENCY,
                txn_id=str(resource["transaction_id"]),
                payer=(resource.get("payer") or {}).get("openid"),
            )
        except (KeyError, TypeError, AttributeError):
            raise MalformedCallback("the payment resource misses a field") from None

    def _refund(self, event: str, resource: dict[str, Any]) -> Notification:
        try:
            self._same_merchant(resource["mchid"])
            status = REFUND_STATES.get(resource["refund_status"])
            if status is None or status == "processing" or event != f"REFUND.{resource['refund_status']}":
                raise MalformedCallback("the refund event and status disagree", event_type=event)
            return Notification(
                kind="refund",
                payment_token=str(resource["out_trade_no"]),
                amount_minor=_fen(resource["amount"]["refund"]),
                currency=CURRENCY,
                txn_id=str(resource["transaction_id"]),
                refund_no=str(resource["out_refund_no"]),
                refund_status=status,
            )
        except (KeyError, TypeError, AttributeError):
            raise MalformedCallback("the refund resource misses a field") from None

    def _same_merchant(self, mchid: object, *, appid: object = None) -> None:
        if mchid != self.merchant.mchid:
            raise NotificationMismatch("the notification is for another merchant", mchid=mchid)
        if appid is not None and appid != self.merchant.appid:
            raise NotificationMismatch("the notification is for another app", appid=appid)

    # --- the signed call --------------------------------------------------------------

    async def _call(
        self, method: str, path: str, *, body: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """One signed API call; its verified JSON answer ({} for 204). Raises GatewayFailed or GatewayRefused."""
        response = await self._send(method, self._base_url + path, body=_json(body) if body else None, params=params)
        if response.status_code >= 300:
            raise _error_of(response)
        signed = protocol.read_platform_signature(dict(response.headers))
        if signed is None or not protocol.platform_verify(self.merchant.platform_keys, signed, response.content):
            raise GatewayFailed("WeChat Pay's answer does not carry a valid platform signature", path=path)
        if response.status_code == 204 or not response.content:
            return {}
        try:
            answer = response.json()
        except ValueError:
            raise GatewayFailed("WeChat Pay's answer is not JSON", path=path) from None
        if not isinstance(answer, dict):
            raise GatewayFailed("WeChat Pay's answer is not a JSON object", path=path)
        return cast(dict[str, Any], answer)

    async def _send(
        self, method: str, url: str, *, body: bytes | None, params: dict[str, str] | None
    ) -> httpx.Response:
        content = body or b""
        if params:
            url = f"{url}?{urlencode(params)}"
        split = urlsplit(url)
        signed_url = split.path + (f"?{split.query}" if split.query else "")
        authorization = protocol.authorize(
            self.merchant.private_key,
            mchid=self.merchant.mchid,
            serial_no=self.merchant.serial_no,
            method=method,
            url=signed_url,
            body=content,
            timestamp=int(self._now().timestamp()),
            nonce=protocol.new_nonce(),
        )
        headers = {
            "Authorization": authorization.header(),
            "Accept": "application/json",
            "User-Agent": "kaquan-wechatpay/1",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with plugins.http_client(self._setup, self._base_url, timeout_s=self._timeout_s) as client:
                return await client.request(method, url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise GatewayFailed("WeChat Pay did not answer in time", path=split.path) from None
        except httpx.TransportError as failure:
            raise GatewayFailed(
                "WeChat Pay could not be reached", path=split.path, reason=type(failure).__name__
            ) from None


def _error_of(response: httpx.Response) -> GatewayFailed | GatewayRefused:
    try:
        error = response.json()
        code, message = str(error.get("code", "")), str(error.get("message", ""))
    except (ValueError, AttributeError):
        code, message = "", ""
    if response.status_code >= 500 or response.status_code == 429:
        return GatewayFailed(
            "WeChat Pay failed to answer", status=response.status_code, code=code, provider_message=message
        )
    return GatewayRefused(
        f"WeChat Pay refused: {code or response.status_code} {message}".strip(),
        status=response.status_code,
        code=code,
        provider_message=message,
    )


def _refund_result(answer: dict[str, Any]) -> RefundResult:
    state = _text(answer, "status")
    status = REFUND_STATES.get(state)
    if status is None:
        raise GatewayFailed("WeChat Pay answered a refund status kaquan does not know", status=state)
    detail = "" if status != "failed" else f"WeChat Pay refund {state}"
    return RefundResult(status=status, provider_ref=answer.get("refund_id"), detail=detail)


def _text(answer: dict[str, Any], key: str) -> str:
    value = answer.get(key)
    if not isinstance(value, str) or not value:
        raise GatewayFailed(f"WeChat Pay's answer has no {key}")
    return value


def _fen(value: object) -> int:
    if type(value) is not int or value < 0:
        raise MalformedCallback("an amount is not a whole number of fen", amount=value)
    return value


def _answered_fen(value: object) -> int:
    if type(value) is not int or value < 0:
        raise GatewayFailed("WeChat Pay answered an amount that is not a whole number of fen", amount=value)
    return value


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
