"""Starting payments and opening their trades at the provider the buyer chose.

A checkout places the order and a pending payment at once (one transaction);
the trade at the provider is opened afterwards, when the buyer picks how to pay
(`choose`), because a provider call must never run inside the order's
transaction. Notifications, the active query and refunds are in their own
modules (`notifications`, `sweeps`, `refunds`).
"""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.catalog import service as catalog
from kaquan.kit import clock, outbox
from kaquan.kit.config import Settings
from kaquan.kit.db import Database, insert_rows
from kaquan.kit.errors import Conflict
from kaquan.orders import service as orders
from kaquan.orders.holds import HoldPolicy
from kaquan.orders.service import Order
from kaquan.payments import registry
from kaquan.payments.errors import MethodNotOffered, PaymentNotFound, PaymentUnavailable
from kaquan.payments.gateway import Gateway, PayAction, PaymentRequest
from kaquan.payments.models import Payment as Payment
from kaquan.risk import Decision, reviews


def require_gateway(gateway: Gateway | None) -> Gateway:
    """The gateway new payments go through; without one the shop refuses orders instead of holding codes."""
    if gateway is None:
        raise PaymentUnavailable()
    return gateway


def pay_path(payment_token: str) -> str:
    """kaquan's own pay page for a payment, where the buyer chooses a method and sees its QR code or link."""
    return f"/pay/{payment_token}"


def checkout_url(payment: Payment) -> str | None:
    """Where the buyer pays this payment, while it can still be paid and this server takes money at all."""
    return pay_path(payment.token) if payment.status == "pending" and registry.all() else None


@dataclass(frozen=True)
class Checkout:
    """A shop order and the payment that pays it; `replayed` when the client's retry found both made already."""

    order: Order
    lookup_secret: str
    payment: Payment
    replayed: bool


async def checkout(
    db: Database,
    session: AsyncSession,
    keys: orders.OrderKeys,
    gateway: Gateway | None,
    request: orders.OrderRequest,
    settings: Settings,
    *,
    decision: Decision | None = None,
) -> Checkout:
    """The shop's sale, for its pages and its API alike: place the order under the shop's hold policy
    and start its payment, or, for a retry by the same client, return the order and payment made before.
    When risk's `decision` asks for a review, the order is held for it (`risk.reviews`): it may be paid,
    and is delivered only once a person approves it.

    Without a gateway nothing is placed: the shop refuses the order rather than hold codes nobody can pay.
    """
    gateway = require_gateway(gateway)
    placed = await orders.place(
        db,
        session,
        keys,
        request,
        max_per_order=settings.max_per_order,
        hold_minutes=settings.hold_minutes,
        policy=HoldPolicy.of(settings),
    )
    if decision is not None and decision.holds:
        await reviews.hold(session, decision, order_id=placed.order.id, placed=not placed.replayed)
    payment = await latest_for_order(session, placed.order.id) if placed.replayed else None
    if payment is None:
        payment = await start(session, gateway, placed.order)
    return Checkout(placed.order, placed.lookup_secret, payment, placed.replayed)


async def start(session: AsyncSession, gateway: Gateway, order: Order) -> Payment:
    """A new pending payment for an unpaid order (one per checkout attempt)."""
    payment = Payment(**_pending(gateway, Due(order.id, order.total_minor, order.currency), clock.now()))
    session.add(payment)
    await session.flush()
    return payment


@dataclass(frozen=True)
class Due:
    """What one unpaid order owes: a flash-sale batch knows it without loading the order."""

    order_id: int
    amount_minor: int
    currency: str


def _pending(gateway: Gateway, due: Due, at: datetime) -> dict[str, Any]:
    return {
        "token": secrets.token_urlsafe(18),
        "order_id": due.order_id,
        "gateway": gateway.name,
        "amount_minor": due.amount_minor,
        "currency": due.currency,
        "status": "pending",
        "fee_minor": 0,
        "refunded_minor": 0,
        "created_at": at,
    }


async def start_many(session: AsyncSession, gateway: Gateway, dues: Sequence[Due]) -> list[str]:
    """`start` for many orders at once (a flash-sale batch), in one statement; returns their pay tokens in order."""
    at = clock.now()
    rows = [_pending(gateway, due, at) for due in dues]
    await insert_rows(session, Payment.__table__, rows)  # type: ignore[arg-type]
    return [row["token"] for row in rows]


async def latest_for_order(session: AsyncSession, order_id: int) -> Payment | None:
    stmt = select(Payment).where(Payment.order_id == order_id).order_by(Payment.id.desc()).limit(1)
    return (await session.execute(stmt)).scalar_one_or_none()


async def of_order(session: AsyncSession, order_id: int) -> list[Payment]:
    """Every payment of an order, oldest first."""
    stmt = select(Payment).where(Payment.order_id == order_id).order_by(Payment.id)
    return list((await session.execute(stmt)).scalars())


async def by_token(session: AsyncSession, token: str) -> Payment:
    payment = (await session.execute(select(Payment).where(Payment.token == token))).scalar_one_or_none()
    if payment is None:
        raise PaymentNotFound("no such payment")
    return payment


@dataclass(frozen=True)
class MethodOption:
    """One way to pay offered to the buyer: `key` is "<gateway>:<method>"."""

    key: str
    gateway: str
    method: str


def offered_methods() -> list[MethodOption]:
    """Every gateway and method this server takes money through, in the gateways' configured order."""
    return [
        MethodOption(f"{gateway.name}:{method}", gateway.name, method)
        for gateway in registry.all()
        for method in gateway.methods
    ]


def _offered(key: str) -> tuple[Gateway, str]:
    name, _, method = key.partition(":")
    gateway = registry.find(name)
    if gateway is None or method not in gateway.methods:
        raise MethodNotOffered(
            f"{key!r} is not a payment method of this shop", method=key, offered=[o.key for o in offered_methods()]
        )
    return gateway, method


@dataclass(frozen=True)
class Chosen:
    """The payment the buyer pays now (a new one when the method changed after a trade was opened) and its action."""

    payment: Payment
    order: Order
    action: PayAction


@dataclass(frozen=True)
class Payer:
    """Who is paying, as far as a provider must know: WeChat H5 needs the address, JSAPI the openid."""

    client_ip: str | None = None
    payer_id: str | None = None


async def choose(db: Database, token: str, method_key: str, *, public_url: str, payer: Payer) -> Chosen:
    """Open (or show again) the provider's trade for a pending payment, by the method the buyer chose.

    Choosing the method a trade is already open for shows that trade again; a
    different method after a trade was opened starts a new payment for the order
    (the old trade is closed at its provider by the worker), so the buyer is never
    shown two live trades for one payment token.
    """
    gateway, method = _offered(method_key)
    async with db.transaction() as session:
        payment = await by_token(session, token)
        order = await orders.locked(db, session, payment.order_id)
        if payment.status != "pending" or order.status != "pending_payment":
            raise Conflict("this payment can no longer be paid", payment_status=payment.status, status=order.status)
        if payment.action is not None and (payment.gateway, payment.method) == (gateway.name, method):
            return Chosen(payment, order, PayAction(**payment.action, provider_ref=payment.provider_ref))
        if payment.action is not None:
            await outbox.enqueue(session, "payments.close", {"payment_id": payment.id})
            payment = await start(session, gateway, order)
        payment.gateway, payment.method = gateway.name, method
        subject = await _subject(session, order)
        token, expires_at = payment.token, order.expires_at
    action = await gateway.create(
        _request(gateway, payment, order, subject, method, expires_at, public_url.rstrip("/"), payer)
    )
    async with db.transaction() as session:
        payment = await by_token(session, token)
        payment.action = {"kind": action.kind, "url": action.url, "qr": action.qr, "fields": dict(action.fields)}
        payment.provider_ref = action.provider_ref
    return Chosen(payment, order, action)


def _request(
    gateway: Gateway,
    payment: Payment,
    order: Order,
    subject: str,
    method: str,
    expires_at: datetime,
    public_url: str,
    payer: Payer,
) -> PaymentRequest:
    return PaymentRequest(
        token=payment.token,
        order_number=order.number,
        subject=subject,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        method=method,
        expires_at=expires_at,
        notify_url=registry.notify_url(gateway.name),
        return_url=f"{public_url}/orders/{order.number}",
        client_ip=payer.client_ip,
        payer_id=payer.payer_id,
    )


async def _subject(session: AsyncSession, order: Order) -> str:
    sku = await catalog.get_sku(session, order.sku_id)
    return f"{sku.name} x{order.quantity}"[:120]
