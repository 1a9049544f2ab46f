"""What payments tell risk's learning: a refund or chargeback flagged as fraud names its order's subjects,
keyed as the decision keyed them, at the order's time; other refunds and rejected ones name nobody."""

import secrets

from tests.support.aftersale import ask, decide
from tests.support.builders import TEST_CLIENT, given_sku_with_codes, pay

from kaquan.orders import service as orders
from kaquan.payments import service as payments
from kaquan.payments.fraud import fraud_evidence
from kaquan.risk import RiskContext
from kaquan.runtime import Runtime


async def given_paid_order(rt: Runtime, contact: str, ip: str) -> str:
    sku = await given_sku_with_codes(rt, 3)
    async with rt.db.transaction() as session:
        placed = await orders.place(
            rt.db,
            session,
            rt.order_keys,
            orders.OrderRequest(
                sku=sku.id, quantity=1, idempotency_key=secrets.token_hex(8), client_token=TEST_CLIENT,
                contact=contact, buyer_ip=ip,
            ),
            max_per_order=rt.settings.max_per_order,
            hold_minutes=rt.settings.hold_minutes,
        )  # fmt: skip
        payment = await payments.start(session, rt.dev_gateway, placed.order)
    assert await pay(rt, payment.token) == "delivered"
    return placed.order.number


async def test_a_refund_flagged_as_fraud_or_chargeback_names_the_orders_subjects(rt: Runtime) -> None:
    fraud = await given_paid_order(rt, "thief@example.com", "198.51.100.7")
    charged_back = await given_paid_order(rt, "other@example.com", "198.51.100.8")
    honest = await given_paid_order(rt, "happy@example.com", "198.51.100.9")
    rejected = await given_paid_order(rt, "maybe@example.com", "198.51.100.10")
    await ask(rt, fraud, reason="Stripe: fraudulent")
    await ask(rt, charged_back, reason="拒付 chargeback from the bank")
    await ask(rt, honest, reason="requested_by_customer")
    refusal = await ask(rt, rejected, reason="fraud suspected by support")
    assert refusal.refund is not None
    await decide(rt, refusal.refund.refund_no, approve=False, note="the buyer proved it was them")

    async with rt.db.read() as session:
        found = await fraud_evidence(session)
        placed = await orders.by_number(session, fraud)

    thief = RiskContext("shop.order", ip="198.51.100.7", contact="thief@example.com").subjects()
    other = RiskContext("shop.order", ip="198.51.100.8", contact="other@example.com").subjects()
    assert {(e.subject, e.source) for e in found} == {
        (thief["ip"], "refund"),
        (thief["contact"], "refund"),
        (other["ip"], "chargeback"),
        (other["contact"], "chargeback"),
    }
    assert {e.at for e in found if e.subject == thief["contact"]} == {placed.created_at}
