"""Stripe, simulated from Stripe's side: its API (the part kaquan uses), its Checkout page, its webhooks, its export.

The API checks the secret key (401 otherwise), reads bracket-notation forms,
keeps sessions, payment intents, charges, refunds and balance transactions in
memory per instance, honours `Idempotency-Key` (the same key replays the first
answer; with other parameters it is an `idempotency_error`) and answers with
Stripe's error shapes. Webhooks go to the one endpoint a merchant registers
(Stripe has no per-payment notify URL): events are built and signed by
`sim_events`, posted by `sim_webhooks`. A buyer paying is notified at once;
events that follow a merchant's request (a refund, an expired session) are
delivered in the background, as Stripe does, so a merchant never waits on its
own webhook inside its own transaction: `drain()` awaits them. A card's bank
can dispute a charge (`dispute`) and later rule on it (`close_dispute`).
"""

import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from kaquan.kit import clock
from kaquan.payments.plugins import SentNotification
from kaquan.payments.stripe import checkout_page, protocol, sim_events
from kaquan.payments.stripe.sim_api import StripeError, invalid, limit_of, matches, missing, page_of, search_clauses
from kaquan.payments.stripe.sim_events import API_VERSION as API_VERSION
from kaquan.payments.stripe.sim_webhooks import WebhookPoster

IDEMPOTENCY_KEY_LIFETIME_S = 86_400
_REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
_Handler = Callable[[Request, dict[str, Any]], Awaitable[dict[str, Any]]]


class TradeNotPayable(Exception):
    """The buyer cannot pay this payment token at Stripe: no open checkout session has it."""


@dataclass(frozen=True)
class _Remembered:
    fingerprint: str
    status: int
    body: bytes
    at: int


class StripeSimulator:
    """One Stripe account (test mode unless the key says live), with its webhook endpoint at `webhook_url`.

    `base_url` is where the app is reached from a browser (the Checkout page's
    address), e.g. {public_url}/sim/stripe; `failing` set to a 5xx status makes
    every API request answer it, as an outage does.
    """

    def __init__(
        self,
        *,
        secret_key: str,
        webhook_secret: str,
        webhook_url: str,
        base_url: str,
        notify_transport: httpx.AsyncBaseTransport | None = None,
        now: Callable[[], datetime] = clock.now,
        fee_rate_bp: int = 290,
        fee_fixed_minor: int = 30,
    ) -> None:
        self.secret_key = secret_key
        self.webhook_secret = webhook_secret
        self.webhooks = WebhookPoster(webhook_url, notify_transport)
        self.base_url = base_url.rstrip("/")
        self.now = now
        self.fee_rate_bp = fee_rate_bp
        self.fee_fixed_minor = fee_fixed_minor
        self.failing: int | None = None
        self.refunds_pending = False  # new refunds stay `pending` until `settle_refund`, as bank refunds do
        self.livemode = secret_key.startswith(("sk_live_", "rk_live_"))
        self.sessions: dict[str, dict[str, Any]] = {}
        self.intents: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.disputes: dict[str, dict[str, Any]] = {}
        self.balance: dict[str, dict[str, Any]] = {}
        self._idempotent: dict[str, _Remembered] = {}
        self._sequence = 0
        api: list[tuple[str, str, _Handler]] = [
            ("/v1/checkout/sessions", "POST", self._create_session),
            ("/v1/checkout/sessions", "GET", self._list_sessions),
            ("/v1/checkout/sessions/{id}", "GET", self._get_session),
            ("/v1/checkout/sessions/{id}/expire", "POST", self._expire_session),
            ("/v1/payment_intents/search", "GET", self._search_intents),
            ("/v1/payment_intents/{id}", "GET", self._get_intent),
            ("/v1/refunds", "POST", self._create_refund),
            ("/v1/refunds", "GET", self._list_refunds),
            ("/v1/refunds/{id}", "GET", self._get_refund),
            ("/v1/balance_transactions", "GET", self._list_balance),
        ]
        pages = [
            Route("/c/pay/{id}", self._pay_page, methods=["GET"]),
            Route("/c/pay/{id}", self._pay_button, methods=["POST"]),
        ]
        self.app: ASGIApp = Starlette(routes=[*(Route(path, self._api(h), methods=[m]) for path, m, h in api), *pages])

    @property
    def webhook_url(self) -> str:
        return self.webhooks.url

    @property
    def notify_transport(self) -> httpx.AsyncBaseTransport | None:
        return self.webhooks.transport

    @notify_transport.setter
    def notify_transport(self, transport: httpx.AsyncBaseTransport | None) -> None:
        self.webhooks.transport = transport

    # --- ProviderSimulator --------------------------------------------------------------------------------

    async def pay(self, payment_token: str, *, notify: bool = True) -> SentNotification | None:
        """The buyer pays the token's open Checkout Session by card: it completes, and Stripe says so."""
        session = next(
            (
                s
                for s in reversed(self.sessions.values())
                if s["client_reference_id"] == payment_token and self._open(s)
            ),
            None,
        )
        if session is None:
            raise TradeNotPayable(f"no open checkout session for payment {payment_token!r}")
        return await self._complete(session, notify=notify)

    async def resend(self, sent: SentNotification) -> SentNotification:
        return await self.webhooks.post(sent.headers, sent.body)

    def sent(self) -> list[SentNotification]:
        return self.webhooks.sent()

    def bill(self, day: date) -> bytes:
        """The day's (UTC) balance transactions as Stripe's balance history CSV export."""
        start = int(datetime.combine(day, time(), UTC).timestamp())
        rows = [
            {**txn, "source": self._source(txn["source"])}
            for txn in self.balance.values()
            if start <= txn["created"] < start + 86_400
        ]
        rows.sort(key=lambda row: (row["created"], row["id"]))
        return protocol.balance_csv(rows)

    async def drain(self) -> None:
        """Wait for the webhooks under way (refunds, expiries); what they got back is in `sent()`."""
        await self.webhooks.drain()

    async def settle_refund(self, refund_id: str, *, succeeded: bool = True) -> SentNotification:
        """A pending refund reaches the bank's verdict; a failed one returns the money to the balance."""
        refund = self.refunds[refund_id]
        if refund["status"] != "pending":
            raise ValueError(f"refund {refund_id} is {refund['status']}, not pending")
        refund["status"] = "succeeded" if succeeded else "failed"
        if not succeeded:
            refund["failure_reason"] = "expired_or_canceled_card"
            self.charges[refund["charge"]]["amount_refunded"] -= refund["amount"]
            self.charges[refund["charge"]]["refunded"] = False
            self._balance_txn("refund_failure", refund_id, refund["amount"], refund["currency"], fee=0, description="")
        return await self.webhooks.post(*self._event("refund.updated", refund))

    async def dispute(
        self, payment_token: str, *, amount: int | None = None, fee: int = 1500, reason: str = "fraudulent"
    ) -> SentNotification:
        """The card holder's bank disputes the token's paid charge: Stripe takes the amount and its dispute fee
        from the balance and posts `charge.dispute.created`. Returns what the merchant answered."""
        charge = next(
            (c for c in reversed(self.charges.values()) if c["metadata"].get("payment_token") == payment_token),
            None,
        )
        if charge is None:
            raise TradeNotPayable(f"no charge for payment {payment_token!r}")
        disputed = charge["amount"] - charge["amount_refunded"] if amount is None else amount
        dispute_id = self._id("dp_")
        txn = self._balance_txn("adjustment", dispute_id, -disputed, charge["currency"], fee=fee, description="")
        dispute = sim_events.opened_dispute(
            {**charge, "livemode": self.livemode},
            dispute_id=dispute_id,
            amount=disputed,
            reason=reason,
            withdrawal=self.balance[txn],
            created=self._unix(),
        )
        charge["disputed"] = True
        self.disputes[dispute_id] = dispute
        return await self.webhooks.post(*self._event("charge.dispute.created", dispute))

    def dispute_of(self, payment_token: str) -> str:
        """The id of the latest dispute of the token's charge."""
        return next(
            str(d["id"])
            for d in reversed(self.disputes.values())
            if self.charges[d["charge"]]["metadata"].get("payment_token") == payment_token
        )

    async def close_dispute(self, dispute_id: str, status: str, *, fee_returned: int = 0) -> SentNotification:
        """The bank rules on a dispute and Stripe posts `charge.dispute.closed`. `won` gives the disputed amount
        back to the balance with `fee_returned` of the dispute fee; `lost` and the rest move nothing."""
        dispute = self.disputes[dispute_id]
        reinstatement = None
        if status == "won":
            txn = self._balance_txn(
                "adjustment", dispute_id, dispute["amount"], dispute["currency"], fee=-fee_returned, description=""
            )
            reinstatement = self.balance[txn]
        sim_events.close_dispute(dispute, status, reinstatement)
        return await self.webhooks.post(*self._event("charge.dispute.closed", dispute))

    async def expire_due(self) -> list[str]:
        """Expire every open session past its `expires_at`, as Stripe's sweeper does, with their webhooks."""
        return [s["id"] for s in list(self.sessions.values()) if s["status"] == "open" and not self._open(s)]

    # --- the API ------------------------------------------------------------------------------------------

    def _api(self, handler: "_Handler") -> Callable[[Request], Awaitable[Response]]:
        """Stripe's API front: outage switch, the secret key, idempotency keys, error shapes."""

        async def guarded(request: Request) -> Response:
            if self.failing is not None:
                return _json(protocol.error_body("api_error", "Stripe is having trouble (simulated)"), self.failing)
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer ") or not secrets.compare_digest(
                auth[7:].encode(), self.secret_key.encode()
            ):
                shown = f"{auth[7:12]}****{auth[-4:]}" if auth.startswith("Bearer ") else ""
                message = f"Invalid API Key provided: {shown}" if shown else "You did not provide an API key."
                return _json(protocol.error_body("invalid_request_error", message), 401)
            body = (await request.body()).decode()
            key = request.headers.get("idempotency-key")
            fingerprint = hashlib.sha256(f"{request.method} {request.url.path} {body}".encode()).hexdigest()
            if request.method == "POST" and key is not None:
                seen = self._idempotent.get(key)
                if seen is not None and self._unix() - seen.at > IDEMPOTENCY_KEY_LIFETIME_S:
                    seen = None  # Stripe prunes keys after 24 hours: the same key is a new request again
                if seen is not None:
                    if seen.fingerprint != fingerprint:
                        message = "Keys for idempotent requests can only be used with the same parameters."
                        return _json(protocol.error_body("idempotency_error", message), 400)
                    return Response(seen.body, seen.status, media_type="application/json", headers=_replayed())
            try:
                params = protocol.decode_form(body if request.method == "POST" else request.url.query)
                answer = await handler(request, params)
                status, payload = 200, answer
            except StripeError as refused:
                status, payload = refused.status, refused.body
            except ValueError as bad:
                status, payload = 400, protocol.error_body("invalid_request_error", f"Invalid request: {bad}")
            encoded = json.dumps(payload).encode()
            if request.method == "POST" and key is not None:
                self._idempotent[key] = _Remembered(fingerprint, status, encoded, self._unix())
            return Response(encoded, status, media_type="application/json")

        return guarded

    async def _create_session(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("mode") != "payment":
            raise invalid("kaquan's simulator only opens payment-mode sessions", param="mode")
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise invalid("line_items is required in payment mode", param="line_items")
        currencies, total = set(), 0
        for index, item in enumerate(items):
            price = item.get("price_data") if isinstance(item, dict) else None
            if not isinstance(price, dict) or not str(price.get("unit_amount", "")).isdigit():
                raise invalid("each line item needs price_data[unit_amount]", param=f"line_items[{index}][price_data]")
            if not isinstance(price.get("product_data"), dict) or not price["product_data"].get("name"):
                raise invalid("price_data needs product_data[name]", param=f"line_items[{index}][price_data]")
            currencies.add(str(price.get("currency", "")))
            total += int(price["unit_amount"]) * int(item.get("quantity", "1"))
        if len(currencies) != 1 or not next(iter(currencies)).isalpha():
            raise invalid("all line items need one currency", param="line_items")
        if not params.get("success_url"):
            raise invalid("success_url is required", param="success_url")
        created = self._unix()
        expires_at = int(params.get("expires_at", created + 86_400))
        if not created + 1800 <= expires_at <= created + 86_400:
            raise invalid(
                "The `expires_at` timestamp must be between 30 minutes and 24 hours from Checkout Session creation.",
                param="expires_at",
            )
        session_id = self._id("cs_live_" if self.livemode else "cs_test_")
        intent_data = params.get("payment_intent_data") or {}
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_subtotal": total,
            "amount_total": total,
            "currency": next(iter(currencies)),
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata") or {},
            "payment_intent": None,
            "payment_method_types": params.get("payment_method_types") or ["card"],
            "customer": None,
            "customer_details": None,
            "url": f"{self.base_url}/c/pay/{session_id}",
            "success_url": params["success_url"],
            "cancel_url": params.get("cancel_url"),
            "created": created,
            "expires_at": expires_at,
            "livemode": self.livemode,
            "line_items_names": [item["price_data"]["product_data"]["name"] for item in items],
            "payment_intent_data": {
                "metadata": intent_data.get("metadata") or {},
                "description": intent_data.get("description"),
            },
        }
        self.sessions[session_id] = session
        return _public(session)

    async def _get_session(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        return _public(self._session(request.path_params["id"]))

    async def _list_sessions(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        for session in self.sessions.values():
            self._open(session)
        found = [
            _public(s)
            for s in self.sessions.values()
            if params.get("payment_intent") in (None, s["payment_intent"])
            and params.get("status") in (None, s["status"])
        ]
        return page_of(found, params, "/v1/checkout/sessions")

    async def _expire_session(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        session = self._session(request.path_params["id"])
        if session["status"] != "open":
            raise invalid(
                f'Only Checkout Sessions with a status in ["open"] can be expired; this one is {session["status"]}.'
            )
        self._expire(session)
        return _public(session)

    async def _get_intent(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        intent = self.intents.get(request.path_params["id"])
        if intent is None:
            raise missing("payment_intent", request.path_params["id"])
        return intent

    async def _search_intents(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        clauses = search_clauses(str(params.get("query", "")))
        found = [
            intent
            for intent in sorted(self.intents.values(), key=lambda i: (i["created"], i["id"]), reverse=True)
            if all(matches(intent, field_name, value) for field_name, value in clauses)
        ]
        limit = limit_of(params)
        return {
            "object": "search_result",
            "url": "/v1/payment_intents/search",
            "has_more": len(found) > limit,
            "next_page": None,
            "data": found[:limit],
        }

    async def _create_refund(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        intent_id = params.get("payment_intent")
        if not intent_id:
            raise invalid("You must pass either a charge or a payment_intent", param="payment_intent")
        intent = self.intents.get(intent_id)
        if intent is None:
            raise missing("payment_intent", intent_id, param="payment_intent")
        charge = self.charges[intent["latest_charge"]]
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining == 0:
            raise invalid(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        raw = params.get("amount", str(remaining))
        if not raw.isdigit() or int(raw) <= 0:
            raise invalid("Invalid positive integer", code="parameter_invalid_integer", param="amount")
        amount = int(raw)
        if amount > remaining:
            currency = charge["currency"]
            raise invalid(
                f"Refund amount ({protocol.format_amount(amount, currency)} {currency}) is greater than unrefunded "
                f"amount on charge ({protocol.format_amount(remaining, currency)} {currency})",
                code="amount_too_large",
                param="amount",
            )
        reason = params.get("reason")
        if reason is not None and reason not in _REFUND_REASONS:
            raise invalid(f"Invalid reason: must be one of {', '.join(_REFUND_REASONS)}", param="reason")
        refund_id = self._id("re_")
        txn = self._balance_txn(
            "refund", refund_id, -amount, charge["currency"], fee=0, description="REFUND FOR CHARGE"
        )
        refund = {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "currency": charge["currency"],
            "payment_intent": intent["id"],
            "charge": charge["id"],
            "metadata": params.get("metadata") or {},
            "reason": reason,
            "status": "pending" if self.refunds_pending else "succeeded",
            "failure_reason": None,
            "balance_transaction": txn,
            "created": self._unix(),
        }
        self.refunds[refund_id] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self._deliver_later("refund.created", refund)
        return refund

    async def _get_refund(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        refund = self.refunds.get(request.path_params["id"])
        if refund is None:
            raise missing("refund", request.path_params["id"])
        return refund

    async def _list_refunds(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        found = [r for r in self.refunds.values() if params.get("payment_intent") in (None, r["payment_intent"])]
        return page_of(found, params, "/v1/refunds")

    async def _list_balance(self, request: Request, params: dict[str, Any]) -> dict[str, Any]:
        expand = params.get("expand") or []
        found = [
            {**txn, "source": self._source(txn["source"])} if "data.source" in expand else dict(txn)
            for txn in self.balance.values()
        ]
        return page_of(found, params, "/v1/balance_transactions")

    # --- the buyer's Checkout page ----------------------------------------------------------------------

    async def _pay_page(self, request: Request) -> Response:
        session = self.sessions.get(request.path_params["id"])
        if session is None:
            return HTMLResponse(checkout_page.missing(), 404)
        if not self._open(session):
            return HTMLResponse(checkout_page.not_payable(paid=session["status"] == "complete"), 410)
        page = checkout_page.pay(session["line_items_names"], session["amount_total"], session["currency"])
        return HTMLResponse(page)

    async def _pay_button(self, request: Request) -> Response:
        session = self.sessions.get(request.path_params["id"])
        if session is None or not self._open(session):
            return RedirectResponse(str(request.url), 303)
        await self._complete(session, notify=True)
        return RedirectResponse(session["success_url"], 303)

    # --- Stripe's own bookkeeping -------------------------------------------------------------------------

    def _session(self, session_id: str) -> dict[str, Any]:
        session = self.sessions.get(session_id)
        if session is None:
            raise missing("checkout.session", session_id)
        self._open(session)
        return session

    def _open(self, session: dict[str, Any]) -> bool:
        """Whether the session can still be paid; one past its `expires_at` expires now, with its webhook."""
        if session["status"] == "open" and self._unix() >= session["expires_at"]:
            self._expire(session)
        return bool(session["status"] == "open")

    def _expire(self, session: dict[str, Any]) -> None:
        session["status"] = "expired"
        self._deliver_later("checkout.session.expired", _public(session))

    async def _complete(self, session: dict[str, Any], *, notify: bool) -> SentNotification | None:
        currency, amount, now = session["currency"], session["amount_total"], self._unix()
        intent_id, charge_id = self._id("pi_"), self._id("ch_")
        fee = (amount * self.fee_rate_bp + 5_000) // 10_000 + self.fee_fixed_minor
        description = "、".join(session["line_items_names"])
        txn = self._balance_txn("charge", charge_id, amount, currency, fee=fee, description=description)
        metadata = dict(session["payment_intent_data"]["metadata"])
        self.intents[intent_id] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_received": amount,
            "currency": currency,
            "status": "succeeded",
            "metadata": metadata,
            "description": session["payment_intent_data"]["description"],
            "latest_charge": charge_id,
            "customer": None,
            "created": now,
            "livemode": self.livemode,
        }
        self.charges[charge_id] = {
            "id": charge_id,
            "object": "charge",
            "amount": amount,
            "amount_refunded": 0,
            "refunded": False,
            "currency": currency,
            "payment_intent": intent_id,
            "metadata": metadata,
            "balance_transaction": txn,
            "created": now,
        }
        session.update(
            status="complete",
            payment_status="paid",
            payment_intent=intent_id,
            customer_details={"email": "buyer@example.com", "name": None},
        )
        event = self._event("checkout.session.completed", _public(session))
        return await self.webhooks.post(*event) if notify else None

    def _balance_txn(self, kind: str, source: str, amount: int, currency: str, *, fee: int, description: str) -> str:
        txn_id = self._id("txn_")
        created = self._unix()
        self.balance[txn_id] = {
            "id": txn_id,
            "object": "balance_transaction",
            "type": kind,
            "source": source,
            "amount": amount,
            "fee": fee,
            "net": amount - fee,
            "currency": currency,
            "created": created,
            "available_on": created + 2 * 86_400,
            "description": description,
            "status": "pending",
        }
        return txn_id

    def _source(self, source_id: str) -> dict[str, Any]:
        return self.charges.get(source_id) or self.refunds.get(source_id) or self.disputes[source_id]

    def _event(self, kind: str, obj: dict[str, Any]) -> tuple[dict[str, str], bytes]:
        return sim_events.signed_event(
            kind,
            obj,
            event_id=self._id("evt_"),
            created=self._unix(),
            livemode=self.livemode,
            secret=self.webhook_secret,
        )

    def _deliver_later(self, kind: str, obj: dict[str, Any]) -> None:
        self.webhooks.post_later(*self._event(kind, obj))

    def _unix(self) -> int:
        return int(self.now().timestamp())

    def _id(self, prefix: str) -> str:
        self._sequence += 1
        return f"{prefix}{self._sequence:06d}{secrets.token_hex(8)}"


def _public(session: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in session.items() if key not in ("line_items_names", "payment_intent_data")}


def _json(payload: dict[str, Any], status: int) -> Response:
    return JSONResponse(payload, status)


def _replayed() -> dict[str, str]:
    return {"idempotent-replayed": "true"}
