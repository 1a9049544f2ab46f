"""Alipay, simulated from its own side: its gateway, its cashier, its notifications and its bills.

An ASGI app serving, under its mount (`/sim/alipay` in a demo server):

- `/gateway.do`: the open-platform gateway. It checks the caller's app id and
  RSA2 signature against the merchant's public key (answering
  `isv.invalid-signature` the way Alipay does), then page pay and WAP pay
  show the cashier, and the API methods answer JSON signed with the
  simulator's own key: precreate, query, close, refund, fastpay refund query,
  bill download URL query.
- `/qr/{code}`: where a scanned QR code lands, `/cashier/{trade_no}/pay`: the
  buyer's "确认付款" button.
- `/bills/{token}`: the bill download (a zip of GBK CSV, see `bill`), valid 30 seconds.

Trades live in memory, per simulator. A trade is payable until its
`time_expire` / `timeout_express` on the simulator's clock (kaquan's clock by
default, so tests can move it); `expire_due` closes overdue trades and sends
their TRADE_CLOSED notifications. Paying sends TRADE_SUCCESS at once; a refund
answers at once and notifies a moment later, the way Alipay does (TRADE_SUCCESS
with `refund_fee`/`gmt_refund`/`out_biz_no` for a partial refund, TRADE_CLOSED
for the last one): `drain()` waits for those. `outage` makes every gateway call
answer that HTTP status. Nothing is retried by itself: `resend` repeats one.
"""

import asyncio
import html
import json
import secrets
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from kaquan.kit import clock
from kaquan.payments.alipay import protocol
from kaquan.payments.alipay.bill import BillKind, BillLine, write_bill
from kaquan.payments.alipay.protocol import ProtocolError
from kaquan.payments.alipay.sim_pages import error_page, page
from kaquan.payments.alipay.sim_trades import (
    CLOSED,
    FINISHED,
    SUCCESS,
    WAIT,
    Refused,
    SimRefund,
    SimTrade,
    TradeNotPayable,
    business,
    invalid,
)
from kaquan.payments.plugins import SentNotification

BILL_URL_LIFETIME = timedelta(seconds=30)
DEFAULT_EXPIRY = {"FAST_INSTANT_TRADE_PAY": timedelta(days=15), "QUICK_WAP_WAY": timedelta(days=15)}
QR_EXPIRY = timedelta(hours=2)
_EXPRESS_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}


class AlipaySimulator:
    """One Alipay account (an app id and a seller PID), with Alipay's key pair and the merchant's public key."""

    def __init__(
        self,
        *,
        key: rsa.RSAPrivateKey,
        merchant_key: rsa.RSAPublicKey,
        app_id: str,
        seller_id: str,
        base_url: str,
        notify_transport: httpx.AsyncBaseTransport | None = None,
        now: Callable[[], datetime] = clock.now,
        fee_rate_bp: int = 60,
    ) -> None:
        self.public_key = key.public_key()
        self.app_id = app_id
        self.seller_id = seller_id
        self.base_url = base_url.rstrip("/")
        self.outage: int | None = None  # while set, every gateway call answers this HTTP status
        self._key = key
        self._merchant_key = merchant_key
        self._notify_transport = notify_transport
        self._now = now
        self._fee_rate_bp = fee_rate_bp
        self._trades: dict[str, SimTrade] = {}
        self._trade_nos: dict[str, str] = {}
        self._qr_codes: dict[str, str] = {}
        self._bill_links: dict[str, tuple[date, datetime]] = {}
        self._sent: list[SentNotification] = []
        self._pending: set[asyncio.Task[SentNotification]] = set()
        self._serial = 0
        self._api: dict[str, Callable[[Mapping[str, str], Mapping[str, Any]], dict[str, Any]]] = {
            "alipay.trade.precreate": self._precreate,
            "alipay.trade.query": self._query,
            "alipay.trade.close": self._close,
            "alipay.trade.refund": self._refund,
            "alipay.trade.fastpay.refund.query": self._refund_query,
            "alipay.data.dataservice.bill.downloadurl.query": self._bill_url,
        }
        self.app: ASGIApp = Starlette(
            routes=[
                Route("/gateway.do", self._gateway, methods=["GET", "POST"]),
                Route("/qr/{code}", self._qr_landing, methods=["GET"]),
                Route("/cashier/{trade_no}/pay", self._cashier_pay, methods=["POST"]),
                Route("/bills/{token}", self._bill_download, methods=["GET"]),
            ]
        )

    # --- ProviderSimulator -------------------------------------------------------------------

    async def pay(self, payment_token: str, *, notify: bool = True) -> SentNotification | None:
        trade = self._trades.get(payment_token)
        if trade is None:
            raise LookupError(f"Alipay has no trade {payment_token}: the buyer never opened its cashier or QR code")
        self._expire(trade)
        if trade.status != WAIT:
            raise TradeNotPayable(f"trade {payment_token} is {trade.status}; Alipay takes no money for it")
        trade.status = SUCCESS
        trade.paid_at = self._now()
        if not notify or not trade.notify_url:
            return None
        return await self._post(trade.notify_url, self._notification(trade))

    async def resend(self, sent: SentNotification) -> SentNotification:
        return await self._deliver(sent.url, sent.headers, sent.body)

    def sent(self) -> list[SentNotification]:
        return list(self._sent)

    def bill(self, day: date) -> bytes:
        lines: list[BillLine] = []
        for trade in self._trades.values():
            if trade.paid_at is not None and _china_day(trade.paid_at) == day:
                fee = -_fee(trade.total_fen, self._fee_rate_bp)
                lines.append(self._bill_line(trade, "交易", trade.paid_at, trade.total_fen, "", fee))
            for refund in trade.refunds.values():
                if _china_day(refund.at) == day:
                    back = _fee(refund.amount_fen, self._fee_rate_bp)
                    lines.append(
                        self._bill_line(trade, "退款", refund.at, -refund.amount_fen, refund.out_request_no, back)
                    )
        lines.sort(key=lambda line: line.finished_at)
        return write_bill(self.seller_id, day, lines, exported_at=self._now())

    # --- more of Alipay's behaviour ----------------------------------------------------------

    async def drain(self) -> None:
        """Wait until every notification Alipay was about to send (refunds') has been sent."""
        while self._pending:
            await asyncio.gather(*list(self._pending))

    async def finish(self, payment_token: str) -> SentNotification | None:
        """The trade's refund period ends: TRADE_FINISHED, notified (no refund is possible after it)."""
        trade = self._trades[payment_token]
        if trade.status != SUCCESS:
            raise TradeNotPayable(f"trade {payment_token} is {trade.status}, not TRADE_SUCCESS")
        trade.status = FINISHED
        return await self._post(trade.notify_url, self._notification(trade)) if trade.notify_url else None

    async def notify_waiting(self, payment_token: str) -> SentNotification:
        """WAIT_BUYER_PAY: sent once the buyer opened the cashier, by an Alipay app that switched it on."""
        trade = self._trades[payment_token]
        if trade.status != WAIT or not trade.notify_url:
            raise TradeNotPayable(f"trade {payment_token} is {trade.status}, not waiting for the buyer")
        return await self._post(trade.notify_url, self._notification(trade))

    async def expire_due(self) -> list[SentNotification]:
        """Close every unpaid trade past its expiry and send its TRADE_CLOSED notification."""
        sent = []
        for trade in self._trades.values():
            self._expire(trade)
            if trade.status == CLOSED and not trade.closed_noticed and not trade.refunds:
                trade.closed_noticed = True
                if trade.notify_url:
                    sent.append(await self._post(trade.notify_url, self._notification(trade)))
        return sent

    def trade(self, payment_token: str) -> SimTrade | None:
        found = self._trades.get(payment_token)
        if found is not None:
            self._expire(found)
        return found

    # --- the gateway -------------------------------------------------------------------------

    async def _gateway(self, request: Request) -> Response:
        if self.outage is not None:
            return Response("<html><body>Service Unavailable</body></html>", self.outage, media_type="text/html")
        params = dict(request.query_params)
        if request.method == "POST":
            try:
                params.update(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                return self._answer("error", invalid("isv.invalid-charset", "字符集错误").body)
        method = params.get("method", "")
        handler = self._api.get(method)
        cashier = method in ("alipay.trade.page.pay", "alipay.trade.wap.pay")
        if handler is None and not cashier:
            return self._answer("error", invalid("isv.invalid-method", "不存在的方法名").body)
        try:
            content = self._authenticate(params)
            if cashier:
                trade = self._open(params, content, product=str(content.get("product_code", "")))
                return HTMLResponse(self._cashier_page(trade))
            assert handler is not None  # noqa: S101 - the lookup above returned early without one
            body = handler(params, content)
        except Refused as refused:
            if cashier:
                return HTMLResponse(error_page(refused.body), status_code=400)
            return self._answer(method, refused.body)
        return self._answer(method, {"code": protocol.SUCCESS_CODE, "msg": "Success", **body})

    def _authenticate(self, params: Mapping[str, str]) -> dict[str, Any]:
        if not params.get("app_id"):
            raise invalid("isv.missing-app-id", "缺少AppID参数")
        if params["app_id"] != self.app_id:
            raise invalid("isv.invalid-app-id", "无效的AppID参数")
        if params.get("sign_type") != "RSA2":
            raise invalid("isv.invalid-signature-type", "无效的签名类型")
        if not params.get("sign"):
            raise invalid("isv.missing-signature", "缺少签名参数")
        if not protocol.verify_request(params, self._merchant_key):
            raise invalid(
                "isv.invalid-signature",
                "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为："
                + protocol.request_signing_string(params),
            )
        try:
            protocol.parse_china_time(params.get("timestamp", ""))
        except ProtocolError:
            raise invalid("isv.invalid-timestamp", "非法的时间戳参数") from None
        try:
            content = json.loads(params.get("biz_content", "{}"))
        except json.JSONDecodeError:
            raise invalid("isv.invalid-parameter", "biz_content 不是合法的 JSON") from None
        if not isinstance(content, dict):
            raise invalid("isv.invalid-parameter", "biz_content 不是 JSON 对象")
        return content

    def _answer(self, method: str, body: Mapping[str, Any]) -> Response:
        text = protocol.response_text(method, body, self._key)
        return Response(text, media_type="application/json;charset=utf-8")

    def _open(self, params: Mapping[str, str], content: Mapping[str, Any], *, product: str) -> SimTrade:
        """The trade a pay request names: opened now, or the same one again (same out_trade_no, same terms)."""
        token = str(content.get("out_trade_no", ""))
        subject = str(content.get("subject", ""))
        if not token or len(token) > 64 or not subject:
            raise invalid("isv.missing-parameter", "缺少必选参数 out_trade_no / subject")
        try:
            total = protocol.fen(str(content.get("total_amount", "")))
        except ProtocolError:
            raise invalid("isv.invalid-parameter", "total_amount 不是合法金额") from None
        if total < 1:
            raise invalid("isv.invalid-parameter", "total_amount 最小 0.01")
        existing = self._trades.get(token)
        if existing is not None:
            self._expire(existing)
            if existing.total_fen != total or existing.subject != subject:
                raise business("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
            if existing.status in (SUCCESS, FINISHED):
                raise business("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
            if existing.status == CLOSED:
                raise business("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
            return existing
        now = self._now()
        self._serial += 1
        trade = SimTrade(
            out_trade_no=token,
            trade_no=f"{_china_day(now):%Y%m%d}22001{self._serial:015d}",
            total_fen=total,
            subject=subject,
            product_code=product,
            notify_url=params.get("notify_url", ""),
            return_url=params.get("return_url", ""),
            created_at=now,
            expires_at=now + self._lifetime(content, product),
            buyer_id=f"2088{secrets.randbelow(10**12):012d}",
            buyer_logon_id=f"{secrets.randbelow(1000):03d}***@example.com",
        )
        if "time_expire" in content:
            try:
                trade.expires_at = protocol.parse_china_time(str(content["time_expire"]))
            except ProtocolError:
                raise invalid("isv.invalid-parameter", "time_expire 格式应为 yyyy-MM-dd HH:mm:ss") from None
        self._trades[token] = trade
        self._trade_nos[trade.trade_no] = token
        return trade

    @staticmethod
    def _lifetime(content: Mapping[str, Any], product: str) -> timedelta:
        express = str(content.get("timeout_express", ""))
        if express[:-1].isdigit() and express[-1:] in _EXPRESS_UNITS:
            return int(express[:-1]) * _EXPRESS_UNITS[express[-1]]
        if express:
            raise invalid("isv.invalid-parameter", "timeout_express 取值范围：1m～15d")
        return DEFAULT_EXPIRY.get(product, QR_EXPIRY)

    def _expire(self, trade: SimTrade) -> None:
        if trade.status == WAIT and self._now() >= trade.expires_at:
            trade.status = CLOSED
            trade.closed_at = trade.expires_at

    def _find(self, content: Mapping[str, Any]) -> SimTrade:
        token = str(content.get("out_trade_no") or self._trade_nos.get(str(content.get("trade_no", "")), ""))
        trade = self._trades.get(token)
        if trade is None:
            raise business("ACQ.TRADE_NOT_EXIST", "交易不存在")
        self._expire(trade)
        return trade

    # --- API methods -------------------------------------------------------------------------

    def _precreate(self, params: Mapping[str, str], content: Mapping[str, Any]) -> dict[str, Any]:
        trade = self._open(params, content, product="FACE_TO_FACE_PAYMENT")
        if not trade.qr_code:
            code = secrets.token_urlsafe(12)
            self._qr_codes[code] = trade.out_trade_no
            trade.qr_code = f"{self.base_url}/qr/{code}"
        return {"out_trade_no": trade.out_trade_no, "qr_code": trade.qr_code}

    def _query(self, params: Mapping[str, str], content: Mapping[str, Any]) -> dict[str, Any]:
        trade = self._find(content)
        answer = {
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "buyer_logon_id": trade.buyer_logon_id,
            "trade_status": trade.status,
            "total_amount": protocol.yuan(trade.total_fen),
            "buyer_user_id": trade.buyer_id,
        }
        if trade.paid_at is not None:
            answer["receipt_amount"] = protocol.yuan(trade.total_fen)
            answer["buyer_pay_amount"] = protocol.yuan(trade.total_fen)
            answer["send_pay_date"] = protocol.china_time(trade.paid_at)
        return answer

    def _close(self, params: Mapping[str, str], content: Mapping[str, Any]) -> dict[str, Any]:
        trade = self._find(content)
        if trade.status != WAIT:
            raise business("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        trade.status = CLOSED
        trade.closed_at = self._now()
        trade.closed_noticed = True  # the merchant closed it: Alipay does not tell it back
        return {"trade_no": trade.trade_no, "out_trade_no": trade.out_trade_no}

    def _refund(self, params: Mapping[str, str], content: Mapping[str, Any]) -> dict[str, Any]:
        trade = self._find(content)
        number = str(content.get("out_request_no") or trade.out_trade_no)
        try:
            amount = protocol.fen(str(content.get("refund_amount", "")))
        except ProtocolError:
            raise invalid("isv.invalid-parameter", "refund_amount 不是合法金额") from None
        done = trade.refunds.get(number)
        if done is not None:  # the same out_request_no again is the same refund: answered, not paid again
            return self._refund_answer(trade, done, fund_change="N")
        if trade.status != SUCCESS:
            raise business("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        if amount < 1 or amount > trade.total_fen - trade.refunded_fen:
            raise business("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
        refund = SimRefund(
            number, amount, trade.refunded_fen + amount, str(content.get("refund_reason", "")), self._now()
        )
        trade.refunds[number] = refund
        if trade.refunded_fen == trade.total_fen:
            trade.status = CLOSED
            trade.closed_at = refund.at
            trade.closed_noticed = True
        if trade.notify_url:
            task = asyncio.get_running_loop().create_task(
                self._post(trade.notify_url, self._notification(trade, refund))
            )
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        return self._refund_answer(trade, refund, fund_change="Y")

    def _refund_answer(self, trade: SimTrade, refund: SimRefund, *, fund_change: str) -> dict[str, Any]:
        return {
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "buyer_logon_id": trade.buyer_logon_id,
            "fund_change": fund_change,
            "refund_fee": protocol.yuan(refund.refunded_total_fen),
            "gmt_refund_pay": protocol.china_time(refund.at),
            "buyer_user_id": trade.buyer_id,
        }

    def _refund_query(self, params: Mapping[str, str], content: Mapping[str, Any]) -> dict[str, Any]:
        trade = self._find(content)
        refund = trade.refunds.get(str(content.get("out_request_no", "")))
        if refund is None:
            return {}  # Alipay's way of saying "no such refund": success, and nothing in it
        return {
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "out_request_no": refund.out_request_no,
            "total_amount": protocol.yuan(trade.total_fen),
            "refund_amount": protocol.yuan(refund.amount_fen),
            "refund_status": "REFUND_SUCCESS",
            "gmt_refund_pay": protocol.china_time(refund.at),
        }

    def _bill_url(self, params: Mapping[str, str], content: Mapping[str, Any]) -> dict[str, Any]:
        if content.get("bill_type") != "trade":
            raise invalid("isv.invalid-parameter", "bill_type 仅支持 trade")
        try:
            day = date.fromisoformat(str(content.get("bill_date", "")))
        except ValueError:
            raise invalid("isv.invalid-parameter", "bill_date 格式应为 yyyy-MM-dd") from None
        if day >= _china_day(self._now()):
            raise business("isp.bill_not_exist", "账单不存在")
        token = secrets.token_urlsafe(16)
        self._bill_links[token] = (day, self._now())
        name = f"{self.seller_id}0156_{day:%Y%m%d}.csv.zip"
        return {"bill_download_url": f"{self.base_url}/bills/{token}?downloadFileName={name}"}

    # --- the buyer's pages -------------------------------------------------------------------

    async def _qr_landing(self, request: Request) -> Response:
        token = self._qr_codes.get(request.path_params["code"])
        trade = self._trades.get(token or "")
        if trade is None:
            return HTMLResponse(page("二维码无效", "<p>该二维码不存在或已失效。</p>"), status_code=404)
        return HTMLResponse(self._cashier_page(trade))

    async def _cashier_pay(self, request: Request) -> Response:
        token = self._trade_nos.get(request.path_params["trade_no"], "")
        try:
            await self.pay(token)
        except LookupError:
            return HTMLResponse(page("交易不存在", "<p>交易不存在。</p>"), status_code=404)
        except TradeNotPayable:
            return HTMLResponse(page("无法付款", "<p>该交易已支付或已关闭。</p>"), status_code=409)
        trade = self._trades[token]
        if not trade.return_url:
            return HTMLResponse(page("付款成功", f"<p>已付款 ¥{protocol.yuan(trade.total_fen)}</p>"))
        separator = "&" if urlsplit(trade.return_url).query else "?"
        return RedirectResponse(f"{trade.return_url}{separator}{urlencode(self._return_params(trade))}", 303)

    def _cashier_page(self, trade: SimTrade) -> str:
        amount = protocol.yuan(trade.total_fen)
        action = f"{urlsplit(self.base_url).path}/cashier/{trade.trade_no}/pay"
        body = (
            f'<p class="subject">{html.escape(trade.subject)}</p><p class="amount">¥{amount}</p>'
            f'<form method="post" action="{html.escape(action)}">'
            f'<button type="submit">确认付款 ¥{amount}</button></form>'
            '<p class="note">本地模拟的支付宝收银台，不会产生真实扣款。</p>'
        )
        return page("支付宝收银台", body)

    def _return_params(self, trade: SimTrade) -> dict[str, str]:
        """What Alipay appends to return_url: the trade, signed like a notification (a hint, never proof of payment)."""
        method = (
            "alipay.trade.wap.pay.return" if trade.product_code == "QUICK_WAP_WAY" else "alipay.trade.page.pay.return"
        )
        params = {
            "charset": "utf-8",
            "out_trade_no": trade.out_trade_no,
            "method": method,
            "total_amount": protocol.yuan(trade.total_fen),
            "trade_no": trade.trade_no,
            "auth_app_id": self.app_id,
            "version": "1.0",
            "app_id": self.app_id,
            "seller_id": self.seller_id,
            "timestamp": protocol.china_time(self._now()),
        }
        return protocol.sign_notification(params, self._key)

    async def _bill_download(self, request: Request) -> Response:
        link = self._bill_links.get(request.path_params["token"])
        if link is None or self._now() - link[1] > BILL_URL_LIFETIME:
            return Response("the download link is unknown or expired", 404, media_type="text/plain")
        day = link[0]
        return Response(
            self.bill(day),
            media_type="application/octet-stream",
            headers={"content-disposition": f'attachment; filename="{self.seller_id}0156_{day:%Y%m%d}.csv.zip"'},
        )

    # --- notifications -----------------------------------------------------------------------

    def _notification(self, trade: SimTrade, refund: SimRefund | None = None) -> dict[str, str]:
        now = self._now()
        amount = protocol.yuan(trade.total_fen)
        params = {
            "notify_time": protocol.china_time(now),
            "notify_type": "trade_status_sync",
            "notify_id": secrets.token_hex(16),
            "app_id": self.app_id,
            "auth_app_id": self.app_id,
            "charset": "utf-8",
            "version": "1.0",
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "buyer_id": trade.buyer_id,
            "buyer_logon_id": trade.buyer_logon_id,
            "seller_id": self.seller_id,
            "trade_status": trade.status,
            "total_amount": amount,
            "subject": trade.subject,
            "gmt_create": protocol.china_time(trade.created_at),
        }
        if trade.paid_at is not None:
            params |= {
                "receipt_amount": amount,
                "invoice_amount": amount,
                "buyer_pay_amount": amount,
                "point_amount": "0.00",
                "gmt_payment": protocol.china_time(trade.paid_at),
                "fund_bill_list": json.dumps([{"amount": amount, "fundChannel": "ALIPAYACCOUNT"}]),
            }
        if refund is not None:
            params |= {
                "trade_status": CLOSED if refund.refunded_total_fen == trade.total_fen else SUCCESS,
                "refund_fee": protocol.yuan(refund.refunded_total_fen),
                "gmt_refund": f"{protocol.china_time(refund.at)}.{refund.at.microsecond // 1000:03d}",
                "out_biz_no": refund.out_request_no,
            }
        if params["trade_status"] == CLOSED and trade.closed_at is not None:
            params["gmt_close"] = protocol.china_time(trade.closed_at)
        return protocol.sign_notification(params, self._key)

    async def _post(self, url: str, params: Mapping[str, str]) -> SentNotification:
        headers = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
        return await self._deliver(url, headers, urlencode(params).encode())

    async def _deliver(self, url: str, headers: dict[str, str], body: bytes) -> SentNotification:
        async with httpx.AsyncClient(transport=self._notify_transport, timeout=15.0) as client:
            try:
                response = await client.post(url, content=body, headers=headers)
                status, answer = response.status_code, response.content
            except httpx.HTTPError as exc:  # kaquan unreachable: Alipay records a failure and would retry later
                status, answer = 0, f"{type(exc).__name__}".encode()
        sent = SentNotification(url=url, headers=dict(headers), body=body, status_code=status, answer=answer)
        self._sent.append(sent)
        return sent

    def _bill_line(
        self, trade: SimTrade, kind: BillKind, at: datetime, received: int, refund_no: str, fee: int
    ) -> BillLine:
        return BillLine(
            trade_no=trade.trade_no,
            out_trade_no=trade.out_trade_no,
            kind=kind,
            subject=trade.subject,
            created_at=trade.created_at,
            finished_at=at,
            counterparty=trade.buyer_logon_id,
            order_fen=trade.total_fen,
            received_fen=received,
            refund_no=refund_no,
            fee_fen=fee,
        )


def _fee(amount_fen: int, rate_bp: int) -> int:
    """Alipay's service fee on an amount, rounded half up to the fen."""
    return (amount_fen * rate_bp + 5_000) // 10_000


def _china_day(at: datetime) -> date:
    return at.astimezone(protocol.CHINA_TIME).date()
