"""Booking gateway sales, refunds, chargebacks and the cost of goods on the ledger, once each.

Each booking is one transfer under a reference of its own kind (`payment:<ref>`,
`refund:<no>`, `chargeback:<no>`, `cogs:<order number>`): booking it again
changes nothing, and booking other amounts under a used reference is an
`IdempotencyConflict`. Services never commit: the caller's transaction holds the
booking together with the payment, delivery or refund it records.

Hot accounts: every sale of a channel credits one `sales:<channel>:<cur>` row and
every sale through a gateway debits one receivable row. Transfers go through
`ledger.post_many_locking_last` with `unfloored_at_commit`: postings are inserted
first and, on PostgreSQL, the balances of these floorless accounts move during
the caller's commit (a deferred trigger), so concurrent sales wait for each other
only for that commit, however long the caller takes to get there. On SQLite each
balance moves by one UPDATE at the end: book last in the transaction, right
before it commits.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import inventory, ledger
from kaquan.accounting import chart
from kaquan.accounting.errors import InvalidBooking
from kaquan.kit import outbox
from kaquan.kit.db import Database
from kaquan.kit.errors import IdempotencyConflict
from kaquan.orders.service import Order

ACTOR = "accounting"
COST_OF_GOODS_TOPIC = "accounting.cost_of_goods"
MAX_REFERENCE = 100  # the ledger keeps 128 characters: room for the longest prefix


@dataclass(frozen=True)
class _Planned:
    """A transfer to post, its legs by account code (currency, debit-positive amount)."""

    kind: str
    reference: str
    memo: str
    legs: tuple[tuple[str, str, int], ...]


async def book_payment(
    db: Database,
    session: AsyncSession,
    *,
    order: Order,
    gateway: str,
    payment_ref: str,
    amount_minor: int,
    currency: str,
    fee_minor: int,
    actor: str = ACTOR,
) -> None:
    """Money a gateway received for `order`: receivable (net of fee) and fee debited, the channel's sales credited."""
    planned = _payment_plan(order, gateway, payment_ref, amount_minor, currency, fee_minor)
    await _post_once(db, session, [planned], actor=actor)


async def book_sale(
    db: Database,
    session: AsyncSession,
    *,
    order: Order,
    gateway: str,
    payment_ref: str,
    amount_minor: int,
    currency: str,
    fee_minor: int,
    actor: str = ACTOR,
) -> None:
    """`book_payment` and `book_delivery` of a paid order delivered at once, posted together: each hot account
    (the channel's sales, the gateway's receivable, cost of goods, inventory) moves by one UPDATE at the end.

    Call it last in the transaction, after everything else is flushed, right before the commit: from
    these UPDATEs to the commit every other sale of the channel waits (see the module's docstring).
    """
    planned = _payment_plan(order, gateway, payment_ref, amount_minor, currency, fee_minor)
    costs = await inventory.cost_of_orders(session, [order.id])
    await _post_once(db, session, [planned, *_cost_plans([order], costs)], actor=actor)


def _payment_plan(
    order: Order, gateway: str, payment_ref: str, amount_minor: int, currency: str, fee_minor: int
) -> _Planned:
    _check_reference("payment_ref", payment_ref)
    _check_amounts(order, currency, amount_minor, fee_minor, "fee_minor")
    return _Planned(
        chart.PAYMENT,
        f"payment:{payment_ref}",
        f"order {order.number} paid via {gateway}",
        (
            (chart.receivable(gateway, currency), currency, amount_minor - fee_minor),
            (chart.fees(gateway, currency), currency, fee_minor),
            (chart.sales(order.channel, currency), currency, -amount_minor),
        ),
    )


async def book_refund(
    db: Database,
    session: AsyncSession,
    *,
    order: Order,
    gateway: str,
    refund_no: str,
    amount_minor: int,
    currency: str,
    fee_back_minor: int,
    actor: str = ACTOR,
) -> None:
    """A refund the gateway completed: the channel's sales debited, the receivable and the fee given back credited.

    `fee_back_minor` is the fee the gateway returns with this refund (`fees.fee_returned`, or 0 for a
    gateway that keeps its fee). The codes of a refunded order are voided, never restocked, so the
    cost of goods stays booked: a voided code is a loss, not inventory regained.
    """
    _check_reference("refund_no", refund_no)
    _check_amounts(order, currency, amount_minor, fee_back_minor, "fee_back_minor")
    planned = _Planned(
        chart.REFUND,
        f"refund:{refund_no}",
        f"order {order.number} refunded via {gateway}",
        (
            (chart.sales(order.channel, currency), currency, amount_minor),
            (chart.receivable(gateway, currency), currency, -(amount_minor - fee_back_minor)),
            (chart.fees(gateway, currency), currency, -fee_back_minor),
        ),
    )
    await _post_once(db, session, [planned], actor=actor)


async def book_chargeback(
    db: Database,
    session: AsyncSession,
    *,
    order: Order,
    gateway: str,
    chargeback_no: str,
    amount_minor: int,
    currency: str,
    fee_back_minor: int,
    dispute_fee_minor: int = 0,
    actor: str = ACTOR,
) -> None:
    """A payment the buyer's bank took back (拒付): reversed like a refund, plus any dispute fee the gateway charges."""
    _check_reference("chargeback_no", chargeback_no)
    _check_amounts(order, currency, amount_minor, fee_back_minor, "fee_back_minor")
    if dispute_fee_minor < 0:
        raise InvalidBooking("a dispute fee cannot be negative", dispute_fee_minor=dispute_fee_minor)
    planned = _Planned(
        chart.CHARGEBACK,
        f"chargeback:{chargeback_no}",
        f"order {order.number} charged back via {gateway}",
        (
            (chart.sales(order.channel, currency), currency, amount_minor),
            (chart.receivable(gateway, currency), currency, -(amount_minor - fee_back_minor + dispute_fee_minor)),
            (chart.fees(gateway, currency), currency, dispute_fee_minor - fee_back_minor),
        ),
    )
    await _post_once(db, session, [planned], actor=actor)


async def book_dispute_won(
    db: Database,
    session: AsyncSession,
    *,
    order: Order,
    gateway: str,
    chargeback_no: str,
    reinstated_minor: int,
    currency: str,
    fee_returned_minor: int = 0,
    actor: str = ACTOR,
) -> None:
    """A dispute the merchant won: the chargeback reversed. The gateway gives back the disputed amount and
    `fee_returned_minor` of its dispute fee (Stripe: what the reinstating balance transaction says)."""
    _check_reference("chargeback_no", chargeback_no)
    _check_amounts(order, currency, reinstated_minor, fee_returned_minor, "fee_returned_minor")
    planned = _Planned(
        chart.DISPUTE_WON,
        f"dispute_won:{chargeback_no}",
        f"order {order.number}: dispute won via {gateway}",
        (
            (chart.sales(order.channel, currency), currency, -reinstated_minor),
            (chart.receivable(gateway, currency), currency, reinstated_minor + fee_returned_minor),
            (chart.fees(gateway, currency), currency, -fee_returned_minor),
        ),
    )
    await _post_once(db, session, [planned], actor=actor)


async def book_delivery(db: Database, session: AsyncSession, order: Order, *, actor: str = ACTOR) -> None:
    """The cost of the codes a delivered order was given: cost of goods debited, inventory credited, at batch cost.

    Call it in the transaction that delivers the order, after its codes are sold.
    An order whose codes cost nothing (batches without a unit cost) books nothing.
    """
    await book_deliveries(db, session, [order], actor=actor)


async def book_deliveries(db: Database, session: AsyncSession, orders: Sequence[Order], *, actor: str = ACTOR) -> None:
    """`book_delivery` for many orders at once (a channel's batch of agent or marketplace orders): one posting."""
    costs = await inventory.cost_of_orders(session, [order.id for order in orders])
    await _post_once(db, session, _cost_plans(orders, costs), actor=actor)


def _cost_plans(orders: Sequence[Order], costs: Mapping[int, Mapping[str, int]]) -> list[_Planned]:
    """The cost-of-goods transfers of delivered orders, from their codes' costs by order id and currency."""
    return [
        _Planned(
            chart.COGS,
            f"cogs:{order.number}",
            f"cost of order {order.number}",
            tuple(
                leg
                for currency, cost in sorted(costs[order.id].items())
                for leg in ((chart.cogs(currency), currency, cost), (chart.inventory(currency), currency, -cost))
            ),
        )
        for order in orders
        if costs.get(order.id)
    ]


async def book_deliveries_later(session: AsyncSession, order_ids: Sequence[int]) -> None:
    """`book_deliveries` for these delivered orders, booked by the worker once the caller commits.

    For the channels' hot paths (a batch of an agent's or a marketplace's orders): booking there would hold
    the one `cogs:<cur>` and `inventory:<cur>` rows from the booking to the commit, and every batch of every
    agent would queue on them. The outbox event is written in the caller's transaction, so it exists
    exactly when the deliveries do; each booking is once per order (`cogs:<order number>`), so an event
    run twice, or two events naming one order, book it once.
    """
    if order_ids:
        await outbox.enqueue(session, COST_OF_GOODS_TOPIC, {"order_ids": sorted(set(order_ids))})


async def pending_cost_of_goods(session: AsyncSession) -> set[int]:
    """The orders whose cost of goods waits in the outbox (`book_deliveries_later`), not booked yet."""
    payloads = await outbox.pending_payloads(session, COST_OF_GOODS_TOPIC)
    return {int(order_id) for payload in payloads for order_id in payload["order_ids"]}


def _check_reference(name: str, value: str) -> None:
    if not 1 <= len(value) <= MAX_REFERENCE:
        raise InvalidBooking(f"{name} is 1 to {MAX_REFERENCE} characters", **{name: value})


def _check_amounts(order: Order, currency: str, amount_minor: int, fee_minor: int, fee_name: str) -> None:
    if currency != order.currency:
        raise InvalidBooking(
            f"order {order.number} is in {order.currency}, not {currency}", order=order.number, currency=currency
        )
    if type(amount_minor) is not int or amount_minor <= 0:
        raise InvalidBooking("an amount is a positive whole number of minor units", amount_minor=repr(amount_minor))
    if type(fee_minor) is not int or not 0 <= fee_minor <= amount_minor:
        raise InvalidBooking(f"{fee_name} is between 0 and the amount", **{fee_name: repr(fee_minor)})


async def _post_once(db: Database, session: AsyncSession, planned: Sequence[_Planned], *, actor: str) -> None:
    """Post each planned transfer unless its reference is posted already (with the same legs, or a conflict)."""
    by_kind: dict[str, list[_Planned]] = {}
    for plan in planned:
        by_kind.setdefault(plan.kind, []).append(plan)
    fresh: list[_Planned] = []
    posted = await ledger.posted_by_kind(
        session, {kind: [plan.reference for plan in plans] for kind, plans in by_kind.items()}
    )
    for kind, plans in by_kind.items():
        for plan in plans:
            earlier = posted.get((kind, plan.reference))
            if earlier is None:
                fresh.append(plan)
            elif sorted((leg.account_code, leg.debit_minor) for leg in earlier.legs) != sorted(
                (code, amount) for code, _, amount in plan.legs if amount
            ):
                raise IdempotencyConflict(
                    f"{plan.reference} was booked before with other amounts",
                    kind=kind,
                    reference=plan.reference,
                    transfer_id=earlier.id,
                )
    if not fresh:
        return
    currencies = {code: currency for plan in fresh for code, currency, _ in plan.legs}
    ids = await chart.account_ids(db, session, currencies)
    specs = [
        ledger.TransferSpec(
            kind=plan.kind,
            legs=tuple(ledger.Leg(ids[code], amount) for code, _, amount in plan.legs if amount),
            reference=plan.reference,
            memo=plan.memo,
        )
        for plan in fresh
    ]
    await ledger.post_many_locking_last(db, session, specs, actor=actor, unfloored_at_commit=True)
