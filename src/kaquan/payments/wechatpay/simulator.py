"""WeChat Pay API v3 simulated from the platform's side, for tests and demos.

It holds the platform's key pair and knows the merchant's public key by its
certificate serial: it refuses requests that are not signed by the merchant
(401 SIGN_ERROR), signs every answer and notification, encrypts notification
resources under the merchant's APIv3 key, keeps trades and refunds in memory,
serves the buyer's pages (QR landing, H5 checkout, JSAPI bridge stand-in) and
produces the day's trade bill in WeChat Pay's format.

Like WeChat Pay: an unpaid trade cannot be paid after its `time_expire` and
stays NOTPAY until the merchant closes it; a refund is accepted as PROCESSING
and completes a moment later with a REFUND.* notification; one `out_refund_no`
is one refund however often it is sent.
"""

import asyncio
import hashlib
import html
import json
import re
import secrets
from collections.abc import Callable, Coroutine
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from kaquan.kit import clock
from kaquan.payments.plugins import SentNotification
from kaquan.payments.wechatpay import protocol
from kaquan.payments.wechatpay.sim_trades import SimRefund, SimTrade, bill_lines

_OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
_OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
TRADE_TYPES = {"native": "NATIVE", "h5": "MWEB", "jsapi": "JSAPI"}
DEFAULT_EXPIRY = timedelta(hours=2)
COUNTED_REFUNDS = ("PROCESSING", "SUCCESS", "ABNORMAL")  # a CLOSED refund gives its amount back to the trade


class TradeNotPayable(Exception):
    """The buyer cannot pay this trade: unknown, already paid, closed or expired."""


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status, self.code, self.message = status, code, message


class WechatPaySimulator:
    """One merchant's WeChat Pay, as the platform: mount `app` at `base_url`'s path."""

    def __init__(
        self,
        *,
        mchid: str,
        appid: str,
        apiv3_key: bytes,
        merchant_keys: dict[str, rsa.RSAPublicKey],
        platform_key: rsa.RSAPrivateKey,
        platform_serial: str,
        base_url: str,
        notify_transport: httpx.AsyncBaseTransport | None = None,
        fee_rate_bp: int = 60,
        now: Callable[[], datetime] = clock.now,
    ) -> None:
        self.mchid = mchid
        self.appid = appid
        self.platform_serial = platform_serial
        self.base_url = base_url.rstrip("/")
        self.fee_rate_bp = fee_rate_bp
        self.outage: int | None = None  # a 5xx status every API call answers while set
        self.refund_outcome = "SUCCESS"  # how the next refunds end: SUCCESS, CLOSED or ABNORMAL
        self._apiv3_key = apiv3_key
        self._merchant_keys = merchant_keys
        self._platform_key = platform_key
        self._notify_transport = notify_transport
        self._now = now
        self._trades: dict[str, SimTrade] = {}
        self._refunds: dict[str, SimRefund] = {}
        self._downloads: dict[str, bytes] = {}
        self._sent: list[SentNotification] = []
        self._pending: set[asyncio.Task[None]] = set()
        self.app: ASGIApp = Starlette(
            routes=[
                Route("/v3/pay/transactions/{method:str}", self._create, methods=["POST"]),
                Route("/v3/pay/transactions/out-trade-no/{out_trade_no:str}", self._query, methods=["GET"]),
                Route("/v3/pay/transactions/out-trade-no/{out_trade_no:str}/close", self._close, methods=["POST"]),
                Route("/v3/refund/domestic/refunds", self._refund, methods=["POST"]),
                Route("/v3/refund/domestic/refunds/{out_refund_no:str}", self._query_refund, methods=["GET"]),
                Route("/v3/bill/tradebill", self._trade_bill, methods=["GET"]),
                Route("/v3/billdownload/file", self._download, methods=["GET"]),
                Route("/qr/{prepay_id:str}", self._pay_page, methods=["GET"]),
                Route("/h5/checkmweb", self._pay_page, methods=["GET"]),
                Route("/pay/{prepay_id:str}", self._confirm, methods=["POST"]),
                Route("/jsapi/pay", self._bridge, methods=["POST"]),
            ],
            exception_handlers={_ApiError: self._api_error},  # type: ignore[dict-item]
        )

    # --- the ProviderSimulator interface -------------------------------------------------

    async def pay(self, payment_token: str, *, notify: bool = True) -> SentNotification | None:
        """The buyer pays the trade in full; WeChat Pay notifies the merchant unless the notification is lost."""
        trade = self._trades.get(payment_token)
        if trade is None:
            raise TradeNotPayable(f"no trade {payment_token}")
        if trade.state != "NOTPAY":
            raise TradeNotPayable(f"the trade is {trade.state}")
        now = self._now()
        if now > trade.time_expire:
            raise TradeNotPayable("the trade expired")
        trade.state = "SUCCESS"
        trade.transaction_id = "4200" + "".join(secrets.choice("0123456789") for _ in range(24))
        trade.success_time = now
        trade.openid = trade.openid or "o" + protocol.new_nonce(27)
        if not notify:
            return None
        resource = self.transaction_resource(trade)
        return await self._notify(trade.notify_url, "TRANSACTION.SUCCESS", "transaction", resource, "支付成功")

    async def resend(self, sent: SentNotification) -> SentNotification:
        return await self._post(sent.url, sent.headers, sent.body)

    def sent(self) -> list[SentNotification]:
        return list(self._sent)

    def bill(self, day: date) -> bytes:
        return protocol.render_bill(self._bill(day, "ALL"))

    # --- what tests and the demo may look at or switch -------------------------------------

    async def drain(self) -> None:
        """Wait for every notification queued in the background (refund notifications) to be posted."""
        await self.settle()

    async def settle(self) -> None:
        """Wait until every refund accepted so far has completed and been notified."""
        while self._pending:
            await asyncio.gather(*list(self._pending))

    def trade(self, out_trade_no: str) -> SimTrade | None:
        return self._trades.get(out_trade_no)

    def refunds(self, out_trade_no: str) -> list[SimRefund]:
        return [refund for refund in self._refunds.values() if refund.out_trade_no == out_trade_no]

    def signed_notification(
        self, event_type: str, resource: dict[str, Any], *, original_type: str, summary: str, at: datetime | None = None
    ) -> tuple[dict[str, str], bytes]:
        """A notification as the platform builds it: envelope, resource sealed under the APIv3 key, signature."""
        moment = at or self._now()
        sealed = protocol.encrypt_resource(
            self._apiv3_key, _json(resource), original_type=original_type, nonce=protocol.new_nonce(12)
        )
        body = _json(
            {
                "id": secrets.token_hex(16),
                "create_time": protocol.rfc3339(moment),
                "resource_type": "encrypt-resource",
                "event_type": event_type,
                "summary": summary,
                "resource": sealed,
            }
        )
        headers = {"Content-Type": "application/json", **self._sign(body, at=moment)}
        return headers, body

    def transaction_resource(self, trade: SimTrade) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "appid": trade.appid,
            "mchid": trade.mchid,
            "out_trade_no": trade.out_trade_no,
            "trade_type": trade.trade_type,
            "trade_state": trade.state,
            "trade_state_desc": _STATE_WORDS[trade.state],
            "attach": trade.attach,
            "amount": {"total": trade.total, "currency": "CNY"},
        }
        if trade.transaction_id is not None and trade.success_time is not None:
            resource.update(
                transaction_id=trade.transaction_id,
                bank_type="OTHERS",
                success_time=protocol.rfc3339(trade.success_time),
                payer={"openid": trade.openid},
                amount={"total": trade.total, "payer_total": trade.total, "currency": "CNY", "payer_currency": "CNY"},
            )
        return resource

    def refund_resource(self, refund: SimRefund) -> dict[str, Any]:
        resource: dict[str, Any] = {
            "mchid": self.mchid,
            "out_trade_no": refund.out_trade_no,
            "transaction_id": refund.transaction_id,
            "out_refund_no": refund.out_refund_no,
            "refund_id": refund.refund_id,
            "refund_status": refund.status,
            "user_received_account": "支付用户零钱",
            "amount": {
                "total": refund.total,
                "refund": refund.refund,
                "payer_total": refund.total,
                "payer_refund": refund.refund,
            },
        }
        if refund.success_time is not None:
            resource["success_time"] = protocol.rfc3339(refund.success_time)
        return resource

    async def bridge_pay(self, fields: dict[str, str]) -> SentNotification | None:
        """What the WeChat client does with getBrandWCPayRequest: check paySign, then the buyer pays."""
        package = fields.get("package", "")
        message = protocol.jsapi_message(
            fields.get("appId", ""), fields.get("timeStamp", ""), fields.get("nonceStr", ""), package
        )
        signed = any(
            protocol.rsa_verify(key, message, fields.get("paySign", "")) for key in self._merchant_keys.values()
        )
        if fields.get("appId") != self.appid or fields.get("signType") != "RSA" or not signed:
            raise TradeNotPayable("支付验证签名失败")
        trade = self._by_prepay(package.removeprefix("prepay_id="))
        if trade is None:
            raise TradeNotPayable("unknown prepay_id")
        return await self.pay(trade.out_trade_no)

    # --- the API ----------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        auth, body = await self._authenticated(request)
        method = request.path_params["method"]
        if method not in TRADE_TYPES:
            raise _ApiError(404, "NOT_FOUND", "请求的资源不存在")
        order = _json_object(body)
        self._same_merchant(auth, order)
        out_trade_no = order.get("out_trade_no")
        if not isinstance(out_trade_no, str) or not _OUT_TRADE_NO.match(out_trade_no):
            raise _ApiError(400, "PARAM_ERROR", "out_trade_no 应为6-32位数字、字母、_-|*")
        description, notify_url = order.get("description"), order.get("notify_url")
        if not isinstance(description, str) or not 1 <= len(description) <= 127:
            raise _ApiError(400, "PARAM_ERROR", "description 长度应为1-127个字符")
        if not isinstance(notify_url, str) or not notify_url.startswith(("https://", "http://")):
            raise _ApiError(400, "PARAM_ERROR", "notify_url 格式错误")
        total, currency = _amount(order, "total")
        if currency != "CNY":
            raise _ApiError(400, "PARAM_ERROR", "币种仅支持 CNY")
        now = self._now()
        try:
            expire = protocol.parse_rfc3339(order["time_expire"]) if "time_expire" in order else now + DEFAULT_EXPIRY
        except (TypeError, ValueError):
            raise _ApiError(400, "PARAM_ERROR", "time_expire 格式错误") from None
        openid = None
        if method == "h5":
            scene = order.get("scene_info") or {}
            if not scene.get("payer_client_ip") or not (scene.get("h5_info") or {}).get("type"):
                raise _ApiError(400, "PARAM_ERROR", "H5 下单需要 scene_info.payer_client_ip 和 h5_info.type")
        if method == "jsapi":
            openid = (order.get("payer") or {}).get("openid")
            if not isinstance(openid, str) or not openid:
                raise _ApiError(400, "PARAM_ERROR", "JSAPI 下单需要 payer.openid")
        trade = SimTrade(
            appid=self.appid,
            mchid=self.mchid,
            out_trade_no=out_trade_no,
            trade_type=TRADE_TYPES[method],
            description=description,
            attach=str(order.get("attach") or ""),
            notify_url=notify_url,
            total=total,
            time_expire=expire,
            prepay_id="wx" + now.astimezone(protocol.BEIJING).strftime("%d%H%M%S") + secrets.token_hex(12),
            openid=openid,
        )
        existing = self._trades.get(out_trade_no)
        if existing is not None:
            if existing.state in ("SUCCESS", "REFUND"):
                raise _ApiError(400, "ORDERPAID", "该订单已支付")
            if existing.state == "CLOSED":
                raise _ApiError(400, "ORDER_CLOSED", "订单已关闭")
            same = (existing.trade_type, existing.total, existing.description) == (
                trade.trade_type,
                trade.total,
                trade.description,
            )
            if not same:
                raise _ApiError(400, "INVALID_REQUEST", "201 商户订单号重复")
            trade = existing  # the same order again: the same prepay, as WeChat Pay answers within its validity
        self._trades[out_trade_no] = trade
        if method == "native":
            return self._answer({"code_url": f"{self.base_url}/qr/{trade.prepay_id}"})
        if method == "h5":
            return self._answer({"h5_url": f"{self.base_url}/h5/checkmweb?prepay_id={trade.prepay_id}&package=1"})
        return self._answer({"prepay_id": trade.prepay_id})

    async def _query(self, request: Request) -> Response:
        await self._authenticated(request)
        if request.query_params.get("mchid") != self.mchid:
            raise _ApiError(400, "PARAM_ERROR", "mchid 与请求商户号不一致")
        return self._answer(self.transaction_resource(self._trade(request.path_params["out_trade_no"])))

    async def _close(self, request: Request) -> Response:
        auth, body = await self._authenticated(request)
        self._same_merchant(auth, _json_object(body), appid=False)
        trade = self._trade(request.path_params["out_trade_no"])
        if trade.state in ("SUCCESS", "REFUND"):
            raise _ApiError(400, "ORDERPAID", "订单已支付，不能关闭")
        trade.state = "CLOSED"
        return self._answer(None)

    async def _refund(self, request: Request) -> Response:
        _, body = await self._authenticated(request)
        ask = _json_object(body)
        trade = self._trades.get(str(ask.get("out_trade_no", "")))
        if trade is None and ask.get("transaction_id"):
            trade = next((t for t in self._trades.values() if t.transaction_id == ask["transaction_id"]), None)
        if trade is None:
            raise _ApiError(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        out_refund_no = ask.get("out_refund_no")
        if not isinstance(out_refund_no, str) or not _OUT_REFUND_NO.match(out_refund_no):
            raise _ApiError(400, "PARAM_ERROR", "out_refund_no 格式错误")
        refund_amount, currency = _amount(ask, "refund")
        total = (ask.get("amount") or {}).get("total")
        if currency != "CNY":
            raise _ApiError(400, "PARAM_ERROR", "币种仅支持 CNY")
        if total != trade.total:
            raise _ApiError(400, "PARAM_ERROR", "订单金额 total 与原订单金额不一致")
        existing = self._refunds.get(out_refund_no)
        if existing is not None:
            if (existing.out_trade_no, existing.refund) != (trade.out_trade_no, refund_amount):
                raise _ApiError(400, "INVALID_REQUEST", "商户退款单号重复，且参数与原退款单不一致")
            return self._answer(self._refund_answer(existing))  # the same refund, asked again: never a second one
        if trade.state not in ("SUCCESS", "REFUND") or trade.transaction_id is None:
            raise _ApiError(400, "INVALID_REQUEST", "订单未支付，不能退款")
        refunded = sum(r.refund for r in self.refunds(trade.out_trade_no) if r.status in COUNTED_REFUNDS)
        if refund_amount > trade.total - refunded:
            raise _ApiError(400, "PARAM_ERROR", "申请退款金额超过订单可退金额")
        notify_url = ask.get("notify_url")
        refund = SimRefund(
            refund_id="50" + "".join(secrets.choice("0123456789") for _ in range(27)),
            out_refund_no=out_refund_no,
            out_trade_no=trade.out_trade_no,
            transaction_id=trade.transaction_id,
            refund=refund_amount,
            total=trade.total,
            reason=str(ask.get("reason") or ""),
            notify_url=notify_url if isinstance(notify_url, str) and notify_url else None,
            created_at=self._now(),
        )
        self._refunds[out_refund_no] = refund
        self._spawn(self._complete_refund(refund, self.refund_outcome))
        return self._answer(self._refund_answer(refund))

    async def _query_refund(self, request: Request) -> Response:
        await self._authenticated(request)
        refund = self._refunds.get(request.path_params["out_refund_no"])
        if refund is None:
            raise _ApiError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return self._answer(self._refund_answer(refund))

    async def _trade_bill(self, request: Request) -> Response:
        await self._authenticated(request)
        try:
            day = date.fromisoformat(request.query_params.get("bill_date", ""))
        except ValueError:
            raise _ApiError(400, "PARAM_ERROR", "bill_date 格式应为 YYYY-MM-DD") from None
        bill_type = request.query_params.get("bill_type", "ALL")
        if bill_type not in ("ALL", "SUCCESS", "REFUND"):
            raise _ApiError(400, "PARAM_ERROR", "bill_type 应为 ALL、SUCCESS 或 REFUND")
        if day > self._now().astimezone(protocol.BEIJING).date():
            raise _ApiError(400, "NO_STATEMENT_EXIST", "账单文件不存在")
        content = protocol.render_bill(self._bill(day, bill_type))
        token = secrets.token_urlsafe(16)
        self._downloads[token] = content
        return self._answer(
            {
                "hash_type": "SHA1",
                "hash_value": hashlib.sha1(content).hexdigest(),  # noqa: S324 - WeChat Pay's own choice of hash
                "download_url": f"{self.base_url}/v3/billdownload/file?token={token}",
            }
        )

    async def _download(self, request: Request) -> Response:
        await self._authenticated(request)
        content = self._downloads.get(request.query_params.get("token", ""))
        if content is None:
            raise _ApiError(400, "INVALID_REQUEST", "下载链接已失效")
        return Response(content, media_type="application/octet-stream")  # bill files come unsigned

    # --- the buyer's pages ---------------------------------------------------------------

    async def _pay_page(self, request: Request) -> Response:
        prepay_id = request.path_params.get("prepay_id") or request.query_params.get("prepay_id", "")
        trade = self._by_prepay(prepay_id)
        if trade is None:
            return _page("订单不存在", "<p>二维码或链接已失效。</p>", status=404)
        redirect = request.query_params.get("redirect_url", "")
        action = f"{self.base_url}/pay/{quote(trade.prepay_id)}" + (
            f"?redirect_url={quote(redirect, safe='')}" if redirect else ""
        )
        if trade.state != "NOTPAY" or self._now() > trade.time_expire:
            return _page("无法支付", f"<p>订单状态：{html.escape(_STATE_WORDS[trade.state])}</p>", status=409)
        content = (
            f"<p>{html.escape(trade.description)}</p>"
            f'<p class="amount">¥{protocol.yuan(trade.total)}</p>'
            f'<form method="post" action="{html.escape(action)}">'
            f'<button type="submit">确认付款 ¥{protocol.yuan(trade.total)}</button></form>'
        )
        return _page("微信支付（模拟）", content)

    async def _confirm(self, request: Request) -> Response:
        trade = self._by_prepay(request.path_params["prepay_id"])
        try:
            if trade is None:
                raise TradeNotPayable("unknown prepay_id")
            await self.pay(trade.out_trade_no)
        except TradeNotPayable as refused:
            return _page("无法支付", f"<p>{html.escape(str(refused))}</p>", status=409)
        redirect = request.query_params.get("redirect_url")
        if redirect:
            return RedirectResponse(redirect, status_code=303)
        return _page("支付成功", "<p>支付成功，请返回商户页面查看订单。</p>")

    async def _bridge(self, request: Request) -> Response:
        form = await request.form()
        try:
            await self.bridge_pay({key: str(value) for key, value in form.items()})
        except TradeNotPayable as refused:
            return _page("无法支付", f"<p>{html.escape(str(refused))}</p>", status=400)
        return _page("支付成功", "<p>支付成功，请返回商户页面查看订单。</p>")

    # --- internals -----------------------------------------------------------------------

    async def _authenticated(self, request: Request) -> tuple[protocol.Authorization, bytes]:
        """The merchant's signed request, as WeChat Pay checks it; 401 SIGN_ERROR when it does not hold."""
        if self.outage is not None:
            raise _ApiError(self.outage, "SYSTEM_ERROR", "系统繁忙，请稍后重试")
        body = await request.body()
        try:
            auth = protocol.parse_authorization(request.headers.get("authorization", ""))
        except ValueError:
            raise _ApiError(401, "SIGN_ERROR", "Authorization 头缺失或格式错误") from None
        key = self._merchant_keys.get(auth.serial_no)
        if auth.mchid != self.mchid or key is None:
            raise _ApiError(401, "SIGN_ERROR", "商户号或商户证书序列号有误")
        if not auth.timestamp.isdigit() or abs(self._now().timestamp() - int(auth.timestamp)) > protocol.TOLERANCE_S:
            raise _ApiError(401, "SIGN_ERROR", "请求的时间戳已过期")
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        query = request.scope.get("query_string", b"")
        url = raw_path.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")
        message = protocol.request_message(request.method, url, auth.timestamp, auth.nonce_str, body)
        if not protocol.rsa_verify(key, message, auth.signature):
            raise _ApiError(401, "SIGN_ERROR", "签名错误，请检查后再试")
        return auth, body

    def _same_merchant(self, auth: protocol.Authorization, body: dict[str, Any], *, appid: bool = True) -> None:
        if body.get("mchid") != auth.mchid or (appid and body.get("appid") != self.appid):
            raise _ApiError(400, "APPID_MCHID_NOT_MATCH", "appid 和 mchid 不匹配")

    def _trade(self, out_trade_no: str) -> SimTrade:
        trade = self._trades.get(out_trade_no)
        if trade is None:
            raise _ApiError(404, "ORDER_NOT_EXIST", "订单不存在")
        return trade

    def _by_prepay(self, prepay_id: str) -> SimTrade | None:
        return next((trade for trade in self._trades.values() if trade.prepay_id == prepay_id), None)

    def _refund_answer(self, refund: SimRefund) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "refund_id": refund.refund_id,
            "out_refund_no": refund.out_refund_no,
            "transaction_id": refund.transaction_id,
            "out_trade_no": refund.out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": protocol.rfc3339(refund.created_at),
            "status": refund.status,
            "funds_account": "AVAILABLE",
            "amount": {
                "total": refund.total,
                "refund": refund.refund,
                "payer_total": refund.total,
                "payer_refund": refund.refund,
                "settlement_total": refund.total,
                "settlement_refund": refund.refund,
                "discount_refund": 0,
                "currency": "CNY",
            },
        }
        if refund.success_time is not None:
            answer["success_time"] = protocol.rfc3339(refund.success_time)
        return answer

    async def _complete_refund(self, refund: SimRefund, outcome: str) -> None:
        await asyncio.sleep(0)  # after the answer to the refund request, as the platform's own processing would be
        refund.status = outcome
        if outcome == "SUCCESS":
            refund.success_time = self._now()
            self._trades[refund.out_trade_no].state = "REFUND"
        if refund.notify_url is not None:
            summary = {"SUCCESS": "退款成功", "CLOSED": "退款关闭", "ABNORMAL": "退款异常"}[outcome]
            await self._notify(refund.notify_url, f"REFUND.{outcome}", "refund", self.refund_resource(refund), summary)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _notify(
        self, url: str, event_type: str, original_type: str, resource: dict[str, Any], summary: str
    ) -> SentNotification:
        headers, body = self.signed_notification(event_type, resource, original_type=original_type, summary=summary)
        return await self._post(url, headers, body)

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> SentNotification:
        try:
            async with httpx.AsyncClient(transport=self._notify_transport, timeout=10.0) as client:
                response = await client.post(url, content=body, headers=headers)
            status, answer = response.status_code, response.content
        except httpx.HTTPError:
            status, answer = 0, b""  # WeChat Pay would try again later; here `resend` does
        sent = SentNotification(url=url, headers=dict(headers), body=body, status_code=status, answer=answer)
        self._sent.append(sent)
        return sent

    def _sign(self, body: bytes, *, at: datetime | None = None) -> dict[str, str]:
        moment = at or self._now()
        signed = protocol.platform_sign(
            self._platform_key,
            self.platform_serial,
            body,
            timestamp=int(moment.timestamp()),
            nonce=protocol.new_nonce(),
        )
        return signed.headers()

    def _answer(self, data: dict[str, Any] | None, status: int = 200) -> Response:
        if data is None:
            return Response(b"", status_code=204, headers=self._sign(b""))
        body = _json(data)
        return Response(body, status_code=status, media_type="application/json", headers=self._sign(body))

    async def _api_error(self, request: Request, error: _ApiError) -> Response:
        return self._answer({"code": error.code, "message": error.message}, status=error.status)

    def _bill(self, day: date, bill_type: str) -> list[protocol.BillLine]:
        return bill_lines(
            self._trades, self._refunds.values(), day=day, bill_type=bill_type, fee_rate_bp=self.fee_rate_bp
        )


_STATE_WORDS = {
    "NOTPAY": "未支付",
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "CLOSED": "已关闭",
}


def _amount(body: dict[str, Any], key: str) -> tuple[int, str]:
    amount = body.get("amount")
    if not isinstance(amount, dict) or type(amount.get(key)) is not int or amount[key] <= 0:
        raise _ApiError(400, "PARAM_ERROR", f"amount.{key} 应为正整数（单位：分）")
    return int(amount[key]), str(amount.get("currency", "CNY"))


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        raise _ApiError(400, "PARAM_ERROR", "请求体不是合法的 JSON") from None
    if not isinstance(data, dict):
        raise _ApiError(400, "PARAM_ERROR", "请求体应为 JSON 对象")
    return data


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _page(title: str, content: str, *, status: int = 200) -> HTMLResponse:
    page = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:28rem;margin:3rem auto;text-align:center;color:#222}}
h1{{font-size:1.2rem}}.amount{{font-size:2rem;font-weight:bold}}
button{{background:#07c160;color:#fff;border:0;border-radius:.4rem;padding:.8rem 2rem;font-size:1.1rem}}</style>
</head><body><h1>{html.escape(title)}</h1>{content}
<p><small>这是微信支付模拟器，不会产生真实扣款。</small></p></body></html>"""
    return HTMLResponse(page, status_code=status)
