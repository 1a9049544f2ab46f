"""Accounting in tests: a delivered shop order with costed codes, its sale booked, and the books read back."""

import secrets
from dataclasses import dataclass

from tests.support.builders import TEST_CLIENT, GivenSku, given_codes, given_sku, random_codes

from kaquan import accounting, ledger
from kaquan.catalog import service as catalog
from kaquan.inventory.intake import importing, segments
from kaquan.kit.db import Database
from kaquan.orders import service as orders
from kaquan.orders.service import Order
from kaquan.runtime import Runtime

ALIPAY_RATE_BP = 60  # 0.6 %


@dataclass(frozen=True)
class Sale:
    order: Order
    record: accounting.PaidRecord


async def given_costed_sku(rt: Runtime, *costs: tuple[int, int], price_minor: int = 1990) -> GivenSku:
    """A SKU stocked by one code batch per (count, unit cost), imported in that order (so sold in that order)."""
    sku = await given_sku(rt, price_minor=price_minor)
    for count, unit_cost in costs:
        await given_codes(rt, sku, random_codes(count), unit_cost_minor=unit_cost)
    return sku


async def given_costed_segment_sku(rt: Runtime, *, units: int, unit_cost: int, price_minor: int = 500) -> GivenSku:
    sku = await given_sku(rt, stock_kind="segment", price_minor=price_minor, max_per_order=1000)
    async with rt.db.transaction() as session:
        await segments.add_segment(
            rt.db,
            session,
            await catalog.get_sku(session, sku.id),
            prefix=f"S{secrets.token_hex(2).upper()}",
            width=8,
            start=1,
            end=units,
            meta=importing.BatchMeta(unit_cost_minor=unit_cost),
            actor="test",
        )
    return sku


async def delivered_order(rt: Runtime, sku: GivenSku, quantity: int = 1) -> Order:
    """A shop order paid and delivered (its codes sold) with nothing booked yet: what a payment's success
    leaves just before payments books it (the tests here book it themselves, or leave it out)."""
    async with rt.db.transaction() as session:
        placed = await orders.place(
            rt.db,
            session,
            rt.order_keys,
            orders.OrderRequest(
                sku=sku.id, quantity=quantity, idempotency_key=secrets.token_hex(8), client_token=TEST_CLIENT
            ),
            max_per_order=rt.settings.max_per_order,
            hold_minutes=rt.settings.hold_minutes,
        )
        settled = await orders.settle_payment(rt.db, session, placed.order.id)
    assert settled.result == "delivered", settled
    return settled.order


async def book_sale(rt: Runtime, order: Order, *, ref: str | None = None, gateway: str = "alipay") -> Sale:
    """What payments does on a payment's success and delivery: the sale (0.6 % fee) and its cost of goods."""
    ref = ref or f"pay-{order.number}"
    fee = accounting.gateway_fee(order.total_minor, ALIPAY_RATE_BP)
    async with rt.db.transaction() as session:
        await accounting.book_payment(
            rt.db,
            session,
            order=order,
            gateway=gateway,
            payment_ref=ref,
            amount_minor=order.total_minor,
            currency=order.currency,
            fee_minor=fee,
        )
        await accounting.book_delivery(rt.db, session, order)
    return Sale(order, accounting.PaidRecord(ref, order.number, gateway, order.total_minor, order.currency, fee))


async def balances(db: Database, *codes: str) -> dict[str, int]:
    """Each account's balance in its own sign (0 for an account never opened)."""
    found: dict[str, int] = {}
    async with db.read() as session:
        for code in codes:
            account = await ledger.account_by_code(session, code)
            found[code] = 0 if account is None else (await ledger.balance(session, account.id)).balance_minor
    return found


async def transfers(db: Database, *kinds: str) -> list[ledger.PostedTransfer]:
    async with db.read() as session:
        return await ledger.posted_of_kinds(session, kinds)


async def books(
    db: Database, paid: list[accounting.PaidRecord], refunds: list[accounting.RefundRecord] | None = None
) -> list[str]:
    async with db.read() as session:
        return await accounting.check_books(session, paid, refunds or [])


async def ledger_problems(db: Database) -> list[str]:
    async with db.read() as session:
        return (await ledger.check(session)).problems
