"""After sale in tests: a delivered order of each channel, refunds asked for and decided, what they left behind."""

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from tests.support.agents import agent_client, given_agent, given_price
from tests.support.builders import GivenSku, given_sku_with_codes, order_view, pay, place_order
from tests.support.marketplace import given_store_selling, import_file, order_file

from kaquan import redemption
from kaquan.audit.models import AuditEntry
from kaquan.channels import aftersale
from kaquan.kit.outbox import OutboxEvent
from kaquan.payments.models import Payment, PaymentRefund
from kaquan.runtime import Runtime

REASON = "the buyer's code did not work"


@dataclass(frozen=True)
class Delivered:
    """A delivered order and the codes its buyer received."""

    number: str
    sku: GivenSku
    codes: tuple[str, ...]


async def given_shop_order(rt: Runtime, *, quantity: int = 2, sku: GivenSku | None = None) -> Delivered:
    """A shop order paid through the dev gateway and delivered."""
    sku = sku or await given_sku_with_codes(rt, 5)
    number, secret, token = await place_order(rt, sku, quantity)
    assert await pay(rt, token) == "delivered"
    return Delivered(number, sku, (await order_view(rt, number, secret)).codes)


async def given_marketplace_order(rt: Runtime, *, quantity: int = 2, price_minor: int = 1000) -> Delivered:
    """An order of the store `tmall` (fee 5 %), imported from its order file and delivered."""
    sku = await given_store_selling(rt, [f"MKT-{secrets.token_hex(6)}" for _ in range(5)], price_minor=price_minor)
    [line] = await import_file(rt, order_file(f"TM-1,{sku.code},{quantity}"))
    assert line.outcome == "placed" and line.order_no is not None
    return Delivered(line.order_no, sku, tuple(code.secret for code in line.codes))


async def given_agent_order(rt: Runtime, *, quantity: int = 2, deposit_minor: int = 10_000) -> Delivered:
    sku = await given_sku_with_codes(rt, 5)
    await given_price(rt, sku.code, 800)
    agent = await given_agent(rt, deposit_minor=deposit_minor)
    async with agent_client(rt, agent) as kq:
        order = await kq.place_order("A-1", sku.code, quantity)
    assert order.status == "delivered"
    return Delivered(order.order_no, sku, tuple(code.secret for code in order.codes))


async def ask(
    rt: Runtime,
    number: str,
    amount_minor: int | None = None,
    *,
    actor: str = "support-1",
    may_approve: bool = False,
    four_eyes: bool = False,
    reason: str = REASON,
) -> aftersale.AfterSaleRefund:
    async with rt.db.transaction() as session:
        return await aftersale.request_refund(
            rt.db,
            session,
            number,
            amount_minor=amount_minor,
            reason=reason,
            actor=actor,
            may_approve=may_approve,
            four_eyes=four_eyes,
        )


async def decide(
    rt: Runtime,
    refund_no: str,
    *,
    approve: bool = True,
    actor: str = "finance-1",
    note: str = "",
    four_eyes: bool = False,
) -> PaymentRefund:
    async with rt.db.transaction() as session:
        return await aftersale.decide(
            rt.db, session, refund_no, approve=approve, actor=actor, note=note, four_eyes=four_eyes
        )


async def redeem(rt: Runtime, code: str) -> None:
    request = redemption.RedeemRequest(code=code, nonce=secrets.token_hex(8), device_id="till-1", location="Shop 1")
    async with rt.db.transaction() as session:
        await redemption.redeem(rt.db, session, rt.vault, request, actor="clerk", ip=None)


async def refunds_of(rt: Runtime) -> list[PaymentRefund]:
    async with rt.db.read() as session:
        return list((await session.execute(select(PaymentRefund).order_by(PaymentRefund.id))).scalars())


async def payment_of(rt: Runtime, number: str) -> Payment:
    from kaquan.orders import service as orders

    async with rt.db.read() as session:
        order = await orders.by_number(session, number)
        return (await session.execute(select(Payment).where(Payment.order_id == order.id))).scalars().one()


async def order_status(rt: Runtime, number: str) -> str:
    from kaquan.orders import service as orders

    async with rt.db.read() as session:
        return (await orders.by_number(session, number)).status


async def events(rt: Runtime, topic: str) -> list[dict[str, Any]]:
    async with rt.db.read() as session:
        stmt = select(OutboxEvent.payload).where(OutboxEvent.topic == topic).order_by(OutboxEvent.id)
        return list((await session.execute(stmt)).scalars())


async def audited(rt: Runtime, action: str) -> int:
    async with rt.db.read() as session:
        return int((await session.execute(select(func.count()).where(AuditEntry.action == action))).scalar_one())
