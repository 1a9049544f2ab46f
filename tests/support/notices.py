"""Notices in tests: a shop order placed with a contact and a language, paid and delivered; the notices sent."""

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from tests.support.builders import TEST_CLIENT, GivenSku, given_sku_with_codes, order_view, pay

from kaquan.notifications.models import NoticeSent
from kaquan.orders import service as orders
from kaquan.payments import service as payments
from kaquan.runtime import Runtime


@dataclass(frozen=True)
class ShopOrder:
    id: int
    number: str
    lookup_secret: str
    codes: tuple[str, ...]


async def given_delivered(
    rt: Runtime,
    *,
    contact: str = "",
    buyer_contact: str | None = None,
    lang: str = "zh",
    quantity: int = 1,
    sku: GivenSku | None = None,
) -> ShopOrder:
    """A shop order placed as the shop's pages place it (typed contact, or a signed-in buyer's), paid, delivered."""
    sku = sku or await given_sku_with_codes(rt, 5)
    async with rt.db.transaction() as session:
        placed = await orders.place(
            rt.db,
            session,
            rt.order_keys,
            orders.OrderRequest(
                sku=sku.id,
                quantity=quantity,
                idempotency_key=secrets.token_hex(8),
                client_token=TEST_CLIENT,
                contact=contact,
                buyer_contact=buyer_contact,
                lang=lang,
            ),
            max_per_order=rt.settings.max_per_order,
            hold_minutes=rt.settings.hold_minutes,
        )
        payment = await payments.start(session, rt.dev_gateway, placed.order)
        order_id, number, token = placed.order.id, placed.order.number, payment.token
    assert await pay(rt, token) == "delivered"
    codes = (await order_view(rt, number, placed.lookup_secret)).codes
    return ShopOrder(order_id, number, placed.lookup_secret, codes)


async def notices_sent(rt: Runtime) -> list[tuple[str, str]]:
    """(key, channel) of every notice recorded as sent, oldest first."""
    async with rt.db.read() as session:
        rows = await session.execute(select(NoticeSent.key, NoticeSent.channel).order_by(NoticeSent.id))
        return [(key, channel) for key, channel in rows.all()]
