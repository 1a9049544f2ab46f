"""The Stripe adapter: Checkout Sessions in, webhooks read, refunds out, through the official `stripe` library.

The library encodes requests, parses responses and errors and checks webhook
HMACs; its HTTP goes through `StripeHttpx`, a `stripe.HTTPClient` (the
library's base class for custom clients) over the httpx client kaquan gives
every adapter, so calls are async and tests reach the simulator through an
ASGI transport. The library's own retries are off: the worker retries, with
the refund number as the idempotency key.
"""

import json
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

import httpx
import stripe
from stripe.checkout import Session
from stripe.params import RefundCreateParams
from stripe.params.checkout import SessionCreateParams

from kaquan.kit import clock
from kaquan.payments.errors import (
    GatewayFailed,
    GatewayRefused,
    InvalidSignature,
    MalformedCallback,
    MethodNotOffered,
    NotificationMismatch,
)
from kaquan.payments.gateway import (
    Acknowledgement,
    Chargeback,
    DisputeClosed,
    Ignored,
    Notification,
    PayAction,
    PaymentRequest,
    RefundRequest,
    RefundResult,
    RefundStatus,
    TradeState,
)
from kaquan.payments.stripe import protocol
from kaquan.payments.stripe.protocol import CurrencyNotSupported

log = logging.getLogger(__name__)
# The stripe library logs every request at INFO; kaquan logs what the gateway decides, not each HTTP exchange.
logging.getLogger("stripe").setLevel(logging.WARNING)

DEFAULT_API_BASE = "https://api.stripe.com"
METHODS = ("checkout",)
# A session lives at most 24 hours: a token's session, if any is still open or recent, was created within this.
_SESSION_LOOKBACK = protocol.SESSION_MAX_LIFETIME + timedelta(hours=1)
_KNOWN_SESSIONS = 10_000
# An inquiry (Stripe's `warning_*` statuses) takes no money; a chargeback does (`funds_withdrawn` if one escalates).
_INQUIRY = ("warning_needs_response", "warning_under_review", "warning_closed")
_CLOSED = ("won", "lost", "warning_closed", "prevented")
_REFUND_STATUS: dict[str, RefundStatus] = {
    "pending": "processing",
    "requires_action": "processing",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "failed",
}


@dataclass(frozen=True)
class StripeConfig:
    """A merchant's Stripe account as kaquan uses it. `livemode` follows the key: sk_live_/rk_live_ or test."""

    secret_key: str
    webhook_secret: str
    api_base: str = DEFAULT_API_BASE
    account_id: str | None = None  # events about another (connected) account are not ours
    fee_rate_bp: int = 290
    fee_fixed_minor: int = 30  # Stripe's per-charge fixed part, in minor units of the charge's currency

    @property
    def livemode(self) -> bool:
        return livemode_of(self.secret_key)

    def __repr__(self) -> str:  # keys never reach a log through a repr
        return f"StripeConfig(api_base={self.api_base!r}, livemode={self.livemode}, account_id={self.account_id!r})"


def livemode_of(secret_key: str) -> bool:
    for prefix, live in (("sk_live_", True), ("rk_live_", True), ("sk_test_", False), ("rk_test_", False)):
        if secret_key.startswith(prefix):
            return live
    raise ValueError("a Stripe secret key starts with sk_live_, sk_test_, rk_live_ or rk_test_")


class StripeHttpx(stripe.HTTPClient):
    """The `stripe` library's HTTP, done by kaquan's httpx client (async only)."""

    name = "kaquan-httpx"

    def __init__(self, client: httpx.AsyncClient) -> None:
        super().__init__()
        self._client = client

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        try:
            response = await self._client.request(method.upper(), url, headers=dict(headers), content=post_data)
        except httpx.TimeoutException as exc:
            raise GatewayFailed("Stripe did not answer in time", error=type(exc).__name__) from None
        except httpx.TransportError as exc:
            raise GatewayFailed("Stripe could not be reached", error=type(exc).__name__) from None
        return response.content, response.status_code, response.headers

    async def close_async(self) -> None:
        await self._client.aclose()

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        raise NotImplementedError("kaquan calls Stripe asynchronously only")

    def close(self) -> None:
        return None


@asynccontextmanager
async def _calling(operation: str) -> AsyncIterator[None]:
    """Stripe's failures in kaquan's words: could not ask (retry later) or was told no (do not)."""
    try:
        yield
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise GatewayFailed(
            f"Stripe {operation}: {exc.user_message or type(exc).__name__}", operation=operation
        ) from None
    except stripe.APIError as exc:
        raise GatewayFailed(
            f"Stripe {operation} failed on Stripe's side", operation=operation, status=exc.http_status
        ) from None
    except stripe.StripeError as exc:
        error = exc.error
        raise GatewayRefused(
            f"Stripe refused {operation}: {exc.user_message or type(exc).__name__}",
            operation=operation,
            status=exc.http_status,
            code=exc.code,
            type=error.type if error is not None else None,
        ) from None


class StripeGateway:
    name = "stripe"
    methods: tuple[str, ...] = METHODS

    def __init__(
        self,
        config: StripeConfig,
        http: httpx.AsyncClient,
        *,
        now: Callable[[], datetime] = clock.now,
    ) -> None:
        self._config = config
        self._now = now
        self._http = http
        self.fee_rate_bp = config.fee_rate_bp
        self.fee_fixed_minor = config.fee_fixed_minor
        self.keeps_fee_on_refund = True  # Stripe gives back none of its fee when a charge is refunded
        self._client = stripe.StripeClient(
            config.secret_key,
            base_addresses={"api": config.api_base.rstrip("/")},
            max_network_retries=0,
            http_client=StripeHttpx(http),
        )
        self._sessions: OrderedDict[str, str] = OrderedDict()  # payment token → session id, this process only

    # --- paying ---------------------------------------------------------------------------------------------

    async def create(self, request: PaymentRequest) -> PayAction:
        if request.method not in METHODS:
            raise MethodNotOffered(f"Stripe offers {', '.join(METHODS)}", method=request.method)
        known = await self._known_session(request.token)
        if known is not None and known.status == "open" and known.url:
            return PayAction(kind="redirect", url=known.url, provider_ref=known.id)
        expires_at, why = protocol.session_expiry(request.expires_at, self._now())
        if why:
            log.info("stripe session expiry for payment %s %s", request.token, why)
        params = protocol.checkout_session_params(
            token=request.token,
            order_number=request.order_number,
            subject=request.subject,
            amount_minor=request.amount_minor,
            currency=request.currency,
            expires_at=expires_at,
            return_url=request.return_url,
        )
        async with _calling("create a checkout session"):
            session = await self._client.v1.checkout.sessions.create_async(cast(SessionCreateParams, params))
        if not session.url:
            raise GatewayRefused("Stripe created a checkout session without a URL", session=session.id)
        self._remember(request.token, session.id)
        return PayAction(kind="redirect", url=session.url, provider_ref=session.id)

    async def query(self, payment_token: str) -> TradeState:
        session = await self._find_session(payment_token)
        if session is not None:
            return _trade_state(session)
        return await self._paid_intent_state(payment_token)

    async def close(self, payment_token: str) -> None:
        session = await self._find_session(payment_token)
        if session is None or session.status == "expired":
            return
        if session.status == "complete":
            raise GatewayRefused("the Stripe checkout session is already paid", code="checkout_session_complete")
        async with _calling("expire a checkout session"):
            await self._client.v1.checkout.sessions.expire_async(session.id)

    # --- refunds --------------------------------------------------------------------------------------------

    async def refund(self, request: RefundRequest) -> RefundResult:
        intent = request.txn_id or await self._intent_of(request.payment_token)
        if intent is None:
            raise GatewayRefused("the payment has no Stripe PaymentIntent to refund", code="payment_not_paid")
        # Stripe forgets idempotency keys after 24 hours: a refund retried later is first looked up by its number.
        existing = await self._refund_by_number(intent, request.refund_no)
        if existing is not None:
            return _refund_result(existing)
        params: dict[str, Any] = {
            "payment_intent": intent,
            "amount": protocol.to_stripe_amount(request.amount_minor, request.currency),
            "reason": _stripe_reason(request.reason),
            "metadata": {
                "refund_no": request.refund_no,
                "payment_token": request.payment_token,
                "reason": request.reason[:500],  # Stripe's limit on a metadata value
            },
        }
        async with _calling("refund"):
            refund = await self._client.v1.refunds.create_async(
                cast(RefundCreateParams, params), {"idempotency_key": request.refund_no}
            )
        return _refund_result(refund)

    async def query_refund(self, payment_token: str, refund_no: str) -> RefundResult:
        intent = await self._intent_of(payment_token)
        refund = None if intent is None else await self._refund_by_number(intent, refund_no)
        if refund is None:  # listing is strongly consistent: Stripe never received a refund with this number
            return RefundResult(status="failed", detail="Stripe has no refund with this number")
        return _refund_result(refund)

    # --- notifications --------------------------------------------------------------------------------------

    def verify(self, headers: dict[str, str], body: bytes) -> Notification | Chargeback | DisputeClosed | Ignored:
        header = {key.lower(): value for key, value in headers.items()}.get(protocol.SIGNATURE_HEADER, "")
        if not header:
            raise InvalidSignature("the webhook has no Stripe-Signature header")
        try:
            stripe.WebhookSignature.verify_header(body, header, self._config.webhook_secret, tolerance=None)
        except (stripe.SignatureVerificationError, UnicodeDecodeError):
            raise InvalidSignature("the Stripe-Signature does not match the body") from None
        protocol.check_fresh(protocol.signature_timestamp(header), self._now())
        event = _event(body)
        if bool(event.get("livemode")) != self._config.livemode:
            raise NotificationMismatch(
                "a live-mode event reached a test-mode shop, or the other way round",
                event_livemode=bool(event.get("livemode")),
            )
        account = event.get("account")
        if account is not None and account != self._config.account_id:
            raise NotificationMismatch("the event is about another Stripe account", account=account)
        return _notification(str(event["type"]), event["data"]["object"])

    def acknowledge(self, error_code: str | None) -> Acknowledgement:
        body: dict[str, Any] = {"received": True} if error_code is None else {"error": error_code}
        return Acknowledgement(200 if error_code is None else 400, json.dumps(body).encode(), "application/json")

    # --- reconciliation -------------------------------------------------------------------------------------

    async def download_bill(self, day: date) -> bytes:
        """The day's (UTC) balance transactions, every page, as Stripe's balance history CSV export."""
        start = datetime.combine(day, time(), UTC)
        params: dict[str, Any] = {
            "created": {"gte": int(start.timestamp()), "lt": int((start + timedelta(days=1)).timestamp())},
            "limit": 100,
            "expand": ["data.source"],
        }
        rows: list[dict[str, Any]] = []
        async with _calling("list balance transactions"):
            page = await self._client.v1.balance_transactions.list_async(cast(Any, params))
            async for txn in page.auto_paging_iter():
                rows.append(txn.to_dict())
        rows.sort(key=lambda row: (row["created"], row["id"]))
        return protocol.balance_csv(rows)

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- finding a token's trade ----------------------------------------------------------------------------

    def _remember(self, token: str, session_id: str) -> None:
        self._sessions[token] = session_id
        self._sessions.move_to_end(token)
        while len(self._sessions) > _KNOWN_SESSIONS:
            self._sessions.popitem(last=False)

    async def _known_session(self, token: str) -> Session | None:
        session_id = self._sessions.get(token)
        if session_id is None:
            return None
        async with _calling("retrieve a checkout session"):
            return await self._client.v1.checkout.sessions.retrieve_async(session_id)

    async def _find_session(self, token: str) -> Session | None:
        """The token's Checkout Session: remembered by this process, else among the sessions of the last day.

        Stripe lists sessions (strongly consistent) but cannot filter them by
        `client_reference_id`, so a process that restarted scans the day's
        sessions: a session lives at most 24 hours, so any still open, or
        completed or expired lately, is there. A paid one, the likeliest
        good news, wins over an open one; an expired one comes last.
        """
        known = await self._known_session(token)
        if known is not None:
            return known
        since = int((self._now() - _SESSION_LOOKBACK).timestamp())
        found: list[Session] = []
        async with _calling("list checkout sessions"):
            page = await self._client.v1.checkout.sessions.list_async({"created": {"gte": since}, "limit": 100})
            async for session in page.auto_paging_iter():
                if session.client_reference_id == token:
                    found.append(session)
        if not found:
            return None
        rank = {"complete": 0, "open": 1, "expired": 2}
        best = min(found, key=lambda session: rank.get(session.status or "", 3))
        self._remember(token, best.id)
        return best

    async def _paid_intent_state(self, token: str) -> TradeState:
        """An older trade, past the session scan: its PaymentIntent, found by metadata through the Search API."""
        async with _calling("search payment intents"):
            result = await self._client.v1.payment_intents.search_async(
                {"query": protocol.payment_token_search(token), "limit": 10}
            )
        succeeded = [intent for intent in result.data if intent.status == "succeeded"]
        if not succeeded:
            return TradeState(status="pending" if result.data else "not_found")
        intent = succeeded[0]
        return TradeState(
            status="paid",
            amount_minor=protocol.from_stripe_amount(intent.amount_received, intent.currency),
            currency=intent.currency.upper(),
            txn_id=intent.id,
            payer=_customer_id(intent.customer),
        )

    async def _intent_of(self, token: str) -> str | None:
        session = await self._find_session(token)
        if session is not None and session.payment_intent is not None:
            return _id_of(session.payment_intent)
        state = await self._paid_intent_state(token)
        return state.txn_id

    async def _refund_by_number(self, intent: str, refund_no: str) -> stripe.Refund | None:
        async with _calling("list refunds"):
            page = await self._client.v1.refunds.list_async({"payment_intent": intent, "limit": 100})
            async for refund in page.auto_paging_iter():
                if refund.metadata is not None and refund.metadata.to_dict().get("refund_no") == refund_no:
                    return refund
        return None


# --- mapping Stripe's objects to kaquan's -------------------------------------------------------------------


def _id_of(field: Any) -> str:
    return field if isinstance(field, str) else str(field.id)


def _customer_id(customer: Any) -> str | None:
    return None if customer is None else _id_of(customer)


def _trade_state(session: Session) -> TradeState:
    currency = (session.currency or "").upper() or None
    amount = None
    if session.amount_total is not None and currency is not None:
        amount = protocol.from_stripe_amount(session.amount_total, currency)
    if session.status == "complete" and session.payment_status in ("paid", "no_payment_required"):
        email = session.customer_details.email if session.customer_details is not None else None
        return TradeState(
            status="paid",
            amount_minor=amount,
            currency=currency,
            txn_id=_id_of(session.payment_intent) if session.payment_intent is not None else None,
            payer=_customer_id(session.customer) or email,
        )
    if session.status == "expired":
        return TradeState(status="closed", amount_minor=amount, currency=currency)
    return TradeState(status="pending", amount_minor=amount, currency=currency)


def _refund_result(refund: stripe.Refund) -> RefundResult:
    status = _REFUND_STATUS.get(refund.status or "", "processing")
    detail = refund.failure_reason or "" if status == "failed" else ""
    return RefundResult(status=status, provider_ref=refund.id, detail=detail)


def _stripe_reason(reason: str) -> str:
    """Stripe takes one of three reasons; kaquan's own words travel in the refund's metadata."""
    return reason if reason in ("duplicate", "fraudulent", "requested_by_customer") else "requested_by_customer"


def _event(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
        if not isinstance(event, dict) or event.get("object") != "event":
            raise MalformedCallback("the webhook body is not a Stripe event")
        if not isinstance(event["type"], str) or not isinstance(event["data"]["object"], dict):
            raise MalformedCallback("the Stripe event has no type or object")
    except (ValueError, KeyError, TypeError):
        raise MalformedCallback("the webhook body is not a Stripe event") from None
    return event


def _notification(kind: str, obj: dict[str, Any]) -> Notification | Chargeback | DisputeClosed | Ignored:
    try:
        if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
            return _session_notification(obj, paid=True)
        if kind == "checkout.session.expired":
            return _session_notification(obj, paid=False)
        if kind in ("refund.created", "refund.updated"):
            return _refund_notification(obj)
        if kind == "charge.refunded":
            refunds = obj.get("refunds", {}).get("data") or []
            if not refunds:
                raise MalformedCallback("charge.refunded without its refunds; subscribe to refund.updated instead")
            return _refund_notification(max(refunds, key=lambda refund: (refund["created"], refund["id"])))
        if kind in ("charge.dispute.created", "charge.dispute.funds_withdrawn"):
            if obj.get("status") in _INQUIRY:
                return Ignored(f"{kind}:inquiry")
            return _chargeback(obj, obj.get("balance_transactions") or [])
        if kind == "charge.dispute.closed":
            return _dispute_closed(obj)
    except (KeyError, TypeError, AttributeError, ValueError):
        raise MalformedCallback("the Stripe event's object lacks what kaquan reads", event_type=kind) from None
    # An endpoint subscribed to more than kaquan reads (or to every event): acknowledged, not retried for days.
    return Ignored(kind)


def _money(obj: dict[str, Any], amount_key: str) -> tuple[int, str]:
    currency = obj["currency"]
    amount = obj[amount_key]
    if not isinstance(currency, str) or type(amount) is not int:
        raise TypeError("amount and currency")
    try:
        return protocol.from_stripe_amount(amount, currency), currency.upper()
    except CurrencyNotSupported as exc:
        raise NotificationMismatch("the event's currency is not one this shop books", currency=currency) from exc


def _token(obj: dict[str, Any]) -> str:
    token = (obj.get("metadata") or {}).get("payment_token") or obj.get("client_reference_id")
    if not isinstance(token, str) or not token:
        raise NotificationMismatch("the event is about a Stripe object kaquan did not create", object=obj.get("id"))
    return token


def _session_notification(session: dict[str, Any], *, paid: bool) -> Notification:
    if session.get("object") != "checkout.session" or session.get("mode") != "payment":
        raise MalformedCallback("the event's object is not a payment-mode checkout session")
    token = session.get("client_reference_id")
    if not isinstance(token, str) or not token:
        raise NotificationMismatch("the checkout session was not opened by kaquan", session=session.get("id"))
    amount, currency = _money(session, "amount_total")
    if not paid:
        return Notification(kind="closed", payment_token=token, amount_minor=amount, currency=currency)
    if session.get("payment_status") != "paid":
        raise MalformedCallback("the checkout session completed without being paid", session=session.get("id"))
    intent = session.get("payment_intent")
    if intent is None:
        raise MalformedCallback("a paid checkout session without its payment intent", session=session.get("id"))
    details = session.get("customer_details") or {}
    return Notification(
        kind="paid",
        payment_token=token,
        amount_minor=amount,
        currency=currency,
        txn_id=intent if isinstance(intent, str) else str(intent["id"]),
        payer=session.get("customer") or details.get("email"),
    )


def _refund_notification(refund: dict[str, Any]) -> Notification:
    if refund.get("object") != "refund":
        raise MalformedCallback("the event's object is not a refund")
    refund_no = (refund.get("metadata") or {}).get("refund_no")
    if not isinstance(refund_no, str) or not refund_no:
        raise NotificationMismatch("the refund was not made by kaquan", refund=refund.get("id"))
    amount, currency = _money(refund, "amount")
    intent = refund.get("payment_intent")
    return Notification(
        kind="refund",
        payment_token=_token(refund),
        amount_minor=amount,
        currency=currency,
        txn_id=intent if isinstance(intent, str) or intent is None else str(intent["id"]),
        refund_no=refund_no,
        refund_status=_REFUND_STATUS.get(str(refund.get("status")), "processing"),
    )


def _chargeback(dispute: dict[str, Any], withdrawn: list[dict[str, Any]]) -> Chargeback:
    """A dispute opened: Stripe has taken the disputed amount and its dispute fee from the balance already
    (the `withdrawn` balance transactions, the fee in each one's `fee`)."""
    if dispute.get("object") != "dispute":
        raise MalformedCallback("the event's object is not a dispute")
    dispute_id = dispute["id"]
    if not isinstance(dispute_id, str) or not dispute_id:
        raise MalformedCallback("the dispute has no id")
    intent = dispute.get("payment_intent")
    if intent is None:
        raise NotificationMismatch("the dispute names no payment intent kaquan opened", dispute=dispute_id)
    amount, currency = _money(dispute, "amount")
    fees = [txn["fee"] for txn in withdrawn]
    if any(type(fee) is not int or fee < 0 for fee in fees):
        raise TypeError("a balance transaction's fee")
    return Chargeback(
        dispute_id=dispute_id,
        txn_id=intent if isinstance(intent, str) else str(intent["id"]),
        amount_minor=amount,
        currency=currency,
        fee_minor=protocol.from_stripe_amount(sum(fees), currency),
        reason=str(dispute.get("reason") or "")[:64],
    )


def _dispute_closed(dispute: dict[str, Any]) -> DisputeClosed:
    """A dispute ended. Its `balance_transactions` are the withdrawal and, for a won dispute, the
    reinstatement: a positive amount, and a negative fee for the part of the dispute fee Stripe gave back
    (Stripe returns its dispute-countered fee with a win and keeps the dispute-received fee)."""
    status = dispute.get("status")
    if status not in _CLOSED:
        raise MalformedCallback("a closed dispute's status is not an outcome", status=status)
    txns = dispute.get("balance_transactions") or []
    if any(type(txn["amount"]) is not int or type(txn["fee"]) is not int for txn in txns):
        raise TypeError("a balance transaction's amount and fee")
    withdrawn = [txn for txn in txns if txn["amount"] < 0]
    reinstating = [txn for txn in txns if txn["amount"] > 0]
    if any(txn["fee"] > 0 for txn in reinstating):
        raise TypeError("a reinstating balance transaction charges no fee")
    opened = _chargeback(dispute, withdrawn)
    return DisputeClosed(
        opened=opened,
        status=status,
        reinstated_minor=protocol.from_stripe_amount(sum(txn["amount"] for txn in reinstating), opened.currency),
        fee_returned_minor=protocol.from_stripe_amount(-sum(txn["fee"] for txn in reinstating), opened.currency),
    )
