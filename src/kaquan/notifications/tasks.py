"""Outbox handlers: a delivery or refund notice for the buyer of a shop order.

An event is sent at most once per key (`NoticeSent`): the row is written and
flushed before the message goes out, in the transaction that marks the event
done. A failed send rolls the row back with the handler's savepoint and the
outbox retries the event after its backoff; a worker that runs a finished event
again (or a duplicate event) finds the row and sends nothing. Only the crash
between the message leaving and that transaction committing can send one twice,
and then with the same Message-ID.

Orders of agents and marketplaces are told through their own channels
(callbacks, the marketplace's API): only the shop's buyers and flash-sale
buyers are notified here, and only when the order has a contact to send to.
"""

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.buyers.contacts import Contact, normalize
from kaquan.buyers.errors import InvalidContact
from kaquan.kit import clock, outbox
from kaquan.kit.config import Settings
from kaquan.kit.db import Database
from kaquan.notifications import senders
from kaquan.notifications.messages import Notice, delivered_notice, money, refunded_notice
from kaquan.notifications.models import NoticeSent
from kaquan.orders import service as orders
from kaquan.orders.service import Order

log = logging.getLogger("kaquan.notifications")
DELIVERED_TOPIC = "order.delivered"
REFUNDED_TOPIC = "order.refunded"
BUYER_CHANNEL = "shop"  # the shop's pages and API, and flash sales sold through it

_settings: Settings | None = None


def install(settings: Settings) -> None:
    """The settings this process's worker sends notices with (set by runtime.start)."""
    global _settings
    _settings = settings


def _installed() -> Settings:
    if _settings is None:
        raise LookupError("no notification settings in this process")
    return _settings


def recipient(order: Order, settings: Settings) -> Contact | None:
    """Where the order's notices go: its verified contact, else the e-mail address typed at checkout.

    A typed contact that is not an e-mail address is never texted: "12345678" may be a QQ number as well
    as a phone number, and only a verified phone is known to be the buyer's.
    """
    if order.channel != BUYER_CHANNEL:
        return None
    try:
        if order.buyer_contact:
            return normalize(order.buyer_contact, country_code=settings.phone_country_code)
        if "@" in order.contact:
            return normalize(order.contact, country_code=settings.phone_country_code)
    except InvalidContact:
        return None
    return None


def order_link(settings: Settings, order: Order) -> str:
    return f"{settings.public_url.rstrip('/')}/orders/{order.number}"


@outbox.handler(DELIVERED_TOPIC)
async def notify_delivered(db: Database, session: AsyncSession, payload: dict[str, Any]) -> None:
    settings = _installed()
    order = await orders.by_id(session, payload["order_id"])
    key = f"delivered:{order.id}"
    if payload.get("resend"):
        key += f":resend:{payload.get('resend_id', '')}"
    sku = await orders.sku_of(session, order)
    notice = delivered_notice(
        order.lang,
        shop=settings.notify_shop_name,
        number=order.number,
        item=sku.name,
        quantity=order.quantity,
        link=order_link(settings, order),
    )
    await _send_once(session, settings, order, key, "delivered", notice)


@outbox.handler(REFUNDED_TOPIC)
async def notify_refunded(db: Database, session: AsyncSession, payload: dict[str, Any]) -> None:
    settings = _installed()
    order = await orders.by_id(session, payload["order_id"])
    key = f"refunded:{order.id}:{payload.get('refund_no') or 'order'}"
    sku = await orders.sku_of(session, order)
    amount = payload.get("amount_minor", order.total_minor)
    notice = refunded_notice(
        order.lang,
        shop=settings.notify_shop_name,
        number=order.number,
        item=sku.name,
        amount=money(int(amount), str(payload.get("currency") or order.currency)),
        link=order_link(settings, order),
    )
    await _send_once(session, settings, order, key, "refunded", notice)


async def _send_once(
    session: AsyncSession, settings: Settings, order: Order, key: str, kind: str, notice: Notice
) -> None:
    to = recipient(order, settings)
    if to is None:
        return
    if (await session.execute(select(NoticeSent.id).where(NoticeSent.key == key))).first() is not None:
        log.info("notice %s was sent already; not again", key)
        return
    channel = "email" if to.kind == "email" else "sms"
    if channel == "email" and not settings.smtp_host:
        log.info("order %s: no SMTP server configured, %s notice not sent", order.number, kind)
        return
    if channel == "sms" and not settings.sms_webhook_url:
        log.info("order %s: no SMS webhook configured, %s notice not sent", order.number, kind)
        return
    # Written before sending: a concurrent duplicate waits on this row's key, then finds it.
    session.add(NoticeSent(key=key, order_id=order.id, channel=channel, sent_at=clock.now()))
    await session.flush()
    if channel == "email":
        await senders.send_mail(settings, to.value, notice, key=key)
    else:
        await senders.send_sms(settings, to.value, notice, key=key, kind=kind, order=order.number)
