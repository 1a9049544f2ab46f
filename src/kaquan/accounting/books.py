"""`check_books`: the ledger agrees with orders and payments, per currency, and every disagreement is named.

Payments' own state reaches this module as plain records (`PaidRecord`,
`RefundRecord`) that the payments module lists; orders and inventory are read
through their public functions, the ledger through `ledger.posted_of_kinds`.
What is proved:
- every succeeded payment is booked once (`payment:<ref>`), for its amount, fee,
  gateway and its order's channel; no payment booking without a succeeded payment;
- every order that took money has its sale booked exactly once: through its
  payment(s), or (agents, marketplaces) as the channel's `order:<number>` sale;
  a channel order refunded is reversed once (`refund:<number>`);
- every completed refund or chargeback is reversed once, for its amount; no
  reversal without a completed refund; no payment refunded beyond what was paid;
- every delivered order of every channel has its codes' cost booked (`cogs:<number>`),
  or its booking waits in the outbox (agents' and marketplaces' orders, booked by the
  worker: `booking.book_deliveries_later`); no cost booking without a delivered order;
- per currency and channel, the sales these bookings add up to equal what the
  payments, refunds and channel orders say.
"""

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import inventory, ledger
from kaquan.accounting import chart
from kaquan.accounting.booking import pending_cost_of_goods
from kaquan.kit.money import display, supported_currencies
from kaquan.ledger import PostedTransfer
from kaquan.orders.paid import PaidOrder, paid_orders

_MEMO_ORDER = re.compile(r"order (\S+)")


@dataclass(frozen=True)
class PaidRecord:
    """A payment a gateway confirmed (whatever was refunded of it since), as the payments module knows it."""

    payment_ref: str
    order_number: str
    gateway: str
    amount_minor: int
    currency: str
    fee_minor: int | None = None  # None: the fee is not compared


@dataclass(frozen=True)
class RefundRecord:
    """A refund (or chargeback) the gateway completed, of one payment."""

    refund_no: str
    payment_ref: str
    amount_minor: int
    currency: str
    chargeback: bool = False
    fee_back_minor: int | None = None  # None: not compared
    reinstated_minor: int = 0  # a chargeback whose dispute was won: what the gateway gave back


def _money(minor: int, currency: str) -> str:
    """`¥5.00`, as the CLI and the console show money; a currency kaquan does not know stays in minor units."""
    if currency not in supported_currencies():
        return f"{minor} minor units of {currency}"
    return display(minor, currency)


def _sales_credited(transfer: PostedTransfer) -> int:
    return -sum(leg.debit_minor for leg in transfer.legs if leg.account_code.startswith("sales:"))


def _sales_codes(transfer: PostedTransfer) -> set[str]:
    return {leg.account_code for leg in transfer.legs if leg.account_code.startswith("sales:")}


def _channel_of_code(code: str) -> str:
    """`sales:<channel>:<cur>` → the channel (which may hold colons: `marketplace:tmall`); the open API's
    revenue is one account per agent, `sales:api:<agent>:<cur>` (channels.booking), all of channel `api`."""
    channel = code.removeprefix("sales:").rpartition(":")[0]
    return "api" if channel.startswith("api:") else channel


def _label(transfer: PostedTransfer) -> str:
    return f"{transfer.reference} (transfer {transfer.id}, {transfer.memo!r})"


class _Books:
    def __init__(self, orders: dict[str, PaidOrder], transfers: list[PostedTransfer]) -> None:
        self.orders = orders
        self.booked: dict[tuple[str, str], PostedTransfer] = {}
        for transfer in transfers:
            reference = transfer.reference or ""
            if reference.startswith(chart.PREFIX[transfer.kind]):
                self.booked[(transfer.kind, reference.removeprefix(chart.PREFIX[transfer.kind]))] = transfer
        self.problems: list[str] = []
        self.expected: dict[tuple[str, str], int] = defaultdict(int)  # (currency, channel) → net sales

    def of_kind(self, kind: str) -> dict[str, PostedTransfer]:
        return {key: transfer for (k, key), transfer in self.booked.items() if k == kind}

    def say(self, problem: str) -> None:
        self.problems.append(problem)


async def check_books(session: AsyncSession, paid: Iterable[PaidRecord], refunds: Iterable[RefundRecord]) -> list[str]:
    """Every disagreement between the ledger, the orders and the payments' records, named; [] when they agree."""
    orders: dict[str, PaidOrder] = {}
    async for page in paid_orders(session):
        orders |= {order.number: order for order in page}
    books = _Books(orders, await ledger.posted_of_kinds(session, chart.KINDS))
    payments = _check_payments(books, list(paid))
    _check_sales_once(books, payments)
    _check_refunds(books, payments, list(refunds))
    _check_channel_orders(books, payments)
    await _check_cost_of_goods(session, books)
    _check_totals(books)
    return books.problems


def _check_payments(books: _Books, paid: list[PaidRecord]) -> dict[str, PaidRecord]:
    payments: dict[str, PaidRecord] = {}
    for record in paid:
        ref, number = record.payment_ref, record.order_number
        if ref in payments:
            books.say(f"payment {ref}: listed twice by the payments")
            continue
        payments[ref] = record
        order = books.orders.get(number)
        channel = order.channel if order is not None else "?"
        books.expected[(record.currency, channel)] += record.amount_minor
        if order is None:
            books.say(f"payment {ref}: succeeded for order {number}, which the orders do not know as paid")
        elif (order.currency, order.total_minor) != (record.currency, record.amount_minor):
            books.say(
                f"order {number}: paid {_money(record.amount_minor, record.currency)} by payment {ref}, "
                f"but the order is for {_money(order.total_minor, order.currency)}"
            )
        transfer = books.booked.get((chart.PAYMENT, ref))
        if transfer is None:
            books.say(
                f"order {number}: payment {ref} ({_money(record.amount_minor, record.currency)} via "
                f"{record.gateway}) is not on the ledger"
            )
            continue
        _compare_payment(books, record, order, transfer)
    for ref, transfer in books.of_kind(chart.PAYMENT).items():
        if ref not in payments:
            books.say(f"ledger payment {_label(transfer)}: no succeeded payment {ref}")
    return payments


def _compare_payment(books: _Books, record: PaidRecord, order: PaidOrder | None, transfer: PostedTransfer) -> None:
    ref, cur = record.payment_ref, record.currency
    head = f"order {record.order_number}: payment {ref}"
    if {leg.currency for leg in transfer.legs} != {cur}:
        books.say(f"{head} is booked in {', '.join(sorted({leg.currency for leg in transfer.legs}))}, paid in {cur}")
        return
    if (credited := _sales_credited(transfer)) != record.amount_minor:
        books.say(f"{head} is booked as {_money(credited, cur)}, the payment says {_money(record.amount_minor, cur)}")
    gateway_codes = {chart.receivable(record.gateway, cur), chart.fees(record.gateway, cur)}
    others = {leg.account_code for leg in transfer.legs} - gateway_codes - _sales_codes(transfer)
    if others:
        books.say(f"{head} went through {record.gateway}, but is booked to {', '.join(sorted(others))}")
    fee = transfer.moved(chart.fees(record.gateway, cur))
    if record.fee_minor is not None and fee != record.fee_minor:
        books.say(f"{head}: fee booked {_money(fee, cur)}, the payment says {_money(record.fee_minor, cur)}")
    if order is not None and _sales_codes(transfer) != {chart.sales(order.channel, cur)}:
        books.say(f"{head} is credited to {', '.join(sorted(_sales_codes(transfer)))}, not its channel {order.channel}")


def _order_of(transfer: PostedTransfer, payments: dict[str, PaidRecord]) -> str | None:
    """The order a payment booking is for: its payment's, or (a payment unknown) the one its memo names."""
    record = payments.get((transfer.reference or "").removeprefix("payment:"))
    if record is not None:
        return record.order_number
    found = _MEMO_ORDER.search(transfer.memo)
    return found.group(1) if found else None


def _check_sales_once(books: _Books, payments: dict[str, PaidRecord]) -> None:
    """Each order's sale is booked as often as it was paid: once per payment, or once as a channel sale."""
    sales: dict[str, list[str]] = defaultdict(list)
    for transfer in books.of_kind(chart.PAYMENT).values():
        if (number := _order_of(transfer, payments)) is not None:
            sales[number].append(transfer.reference or "")
    for number, transfer in books.of_kind(chart.CHANNEL_SALE).items():
        sales[number].append(transfer.reference or "")
    paid_per_order: dict[str, int] = defaultdict(int)
    for record in payments.values():
        paid_per_order[record.order_number] += 1
    for number, references in sorted(sales.items()):
        expected = paid_per_order.get(number, 1)
        if len(references) > expected:
            books.say(
                f"order {number}: its sale is booked {len(references)} times ({', '.join(sorted(references))}), "
                f"paid {expected} time(s)"
            )
    for number, order in books.orders.items():
        if number not in sales and number not in paid_per_order:
            books.say(
                f"order {number} ({order.channel}): paid, but neither a succeeded payment nor a ledger sale names it"
            )


def _check_refunds(books: _Books, payments: dict[str, PaidRecord], refunds: list[RefundRecord]) -> None:
    seen: set[tuple[str, str]] = set()
    refunded: dict[str, int] = defaultdict(int)
    for record in refunds:
        kind, word = (chart.CHARGEBACK, "chargeback") if record.chargeback else (chart.REFUND, "refund")
        no, cur = record.refund_no, record.currency
        if (kind, no) in seen:
            books.say(f"{word} {no}: listed twice by the payments")
            continue
        seen.add((kind, no))
        payment = payments.get(record.payment_ref)
        number = payment.order_number if payment is not None else "?"
        order = books.orders.get(number)
        books.expected[(cur, order.channel if order is not None else "?")] -= record.amount_minor
        head = f"{word} {no} of payment {record.payment_ref} (order {number})"
        if payment is None:
            books.say(f"{word} {no}: refunds payment {record.payment_ref}, which is not a succeeded payment")
        else:
            refunded[record.payment_ref] += record.amount_minor
        transfer = books.booked.get((kind, no))
        if transfer is None:
            books.say(f"{head}: {_money(record.amount_minor, cur)} not reversed on the ledger")
            continue
        if (debited := -_sales_credited(transfer)) != record.amount_minor or {
            leg.currency for leg in transfer.legs
        } != {cur}:
            books.say(
                f"{head}: reversed {_money(debited, cur)} on the ledger, refunded {_money(record.amount_minor, cur)}"
            )
        if payment is not None and record.fee_back_minor is not None and not record.chargeback:
            back = -transfer.moved(chart.fees(payment.gateway, cur))
            if back != record.fee_back_minor:
                back_says = _money(record.fee_back_minor, cur)
                books.say(f"{head}: fee given back {_money(back, cur)}, the refund says {back_says}")
        if record.reinstated_minor:
            _check_dispute_won(books, record, head, order.channel if order is not None else "?")
            seen.add((chart.DISPUTE_WON, no))
            if payment is not None:
                refunded[record.payment_ref] -= record.reinstated_minor
    for ref, total in sorted(refunded.items()):
        payment = payments[ref]
        if total > payment.amount_minor:
            books.say(
                f"payment {ref} (order {payment.order_number}): refunded {_money(total, payment.currency)}, "
                f"more than the {_money(payment.amount_minor, payment.currency)} paid"
            )
    for kind, word in ((chart.REFUND, "refund"), (chart.CHARGEBACK, "chargeback"), (chart.DISPUTE_WON, "dispute won")):
        for no, transfer in books.of_kind(kind).items():
            if (kind, no) not in seen:
                books.say(f"ledger {word} {_label(transfer)}: no completed {word} {no}")


def _check_dispute_won(books: _Books, record: RefundRecord, head: str, channel: str) -> None:
    """A won dispute gives the chargeback's money back: the sale is booked again, once."""
    cur = record.currency
    books.expected[(cur, channel)] += record.reinstated_minor
    transfer = books.booked.get((chart.DISPUTE_WON, record.refund_no))
    if transfer is None:
        books.say(f"{head}: dispute won, {_money(record.reinstated_minor, cur)} not given back on the ledger")
    elif (credited := _sales_credited(transfer)) != record.reinstated_minor:
        books.say(
            f"{head}: dispute won, {_money(credited, cur)} booked back, "
            f"the gateway gave back {_money(record.reinstated_minor, cur)}"
        )


def _check_channel_orders(books: _Books, payments: dict[str, PaidRecord]) -> None:
    """Orders paid outside the gateways (an agent's deposit, a marketplace): their sale and refund, once each."""
    by_gateway = {record.order_number for record in payments.values()}
    refunds = books.of_kind(chart.CHANNEL_REFUND)
    for number, transfer in books.of_kind(chart.CHANNEL_SALE).items():
        order = books.orders.get(number)
        if order is None:
            books.say(f"ledger sale {_label(transfer)}: no paid order {number}")
            continue
        if number in by_gateway:
            continue  # booked twice: named by _check_sales_once
        books.expected[(order.currency, order.channel)] += order.total_minor
        if (credited := _sales_credited(transfer)) != order.total_minor:
            books.say(f"order {number}: its sale is booked as {credited}, the order is for {order.total_minor}")
        refund = refunds.get(number)
        if order.status == "refunded":
            books.expected[(order.currency, order.channel)] -= order.total_minor
            if refund is None:
                books.say(f"order {number} ({order.channel}): refunded, but its sale is not reversed on the ledger")
            elif -_sales_credited(refund) != order.total_minor:
                books.say(f"order {number}: reversed {-_sales_credited(refund)}, the order is for {order.total_minor}")
        elif refund is not None:
            books.say(f"ledger refund {_label(refund)}: order {number} is {order.status}, not refunded")
    for number, refund in refunds.items():
        if number not in books.orders:
            books.say(f"ledger refund {_label(refund)}: no paid order {number}")


async def _check_cost_of_goods(session: AsyncSession, books: _Books) -> None:
    """Every delivered order of every channel has its codes' cost booked, unless its booking waits in the outbox."""
    booked = books.of_kind(chart.COGS)
    pending = await pending_cost_of_goods(session)
    wanted = sorted((order for order in books.orders.values() if order.delivered), key=lambda order: order.id)
    costs = await inventory.cost_of_orders(session, [order.id for order in wanted])
    for order in wanted:
        expected = costs.get(order.id, {})
        transfer = booked.get(order.number)
        if transfer is None and order.id in pending:
            continue
        posted = {}
        if transfer is not None:
            posted = {
                leg.currency: leg.debit_minor for leg in transfer.legs if leg.account_code == chart.cogs(leg.currency)
            }
        if posted != expected:
            said = ", ".join(_money(minor, cur) for cur, minor in sorted(expected.items())) or "nothing"
            if transfer is None:
                books.say(f"order {order.number}: delivered, but its cost of goods ({said}) is not on the ledger")
            else:
                on_ledger = ", ".join(_money(minor, cur) for cur, minor in sorted(posted.items()))
                books.say(f"order {order.number}: cost of goods {on_ledger} on the ledger, its codes cost {said}")
    delivered = {order.number for order in books.orders.values() if order.delivered}
    for number, transfer in booked.items():
        if number not in delivered:
            books.say(f"ledger cost of goods {_label(transfer)}: no delivered order {number}")


def _check_totals(books: _Books) -> None:
    actual: dict[tuple[str, str], int] = defaultdict(int)
    for transfer in books.booked.values():
        if transfer.kind == chart.COGS:
            continue
        for leg in transfer.legs:
            if leg.account_code.startswith("sales:"):
                actual[(leg.currency, _channel_of_code(leg.account_code))] -= leg.debit_minor
    for currency, channel in sorted(set(actual) | set(books.expected)):
        ledger_says, others_say = actual.get((currency, channel), 0), books.expected.get((currency, channel), 0)
        if ledger_says != others_say:
            books.say(
                f"{currency} sales of channel {channel}: {_money(ledger_says, currency)} on the ledger, "
                f"{_money(others_say, currency)} by the payments and orders"
            )
