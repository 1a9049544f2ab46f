"""Every sale on the ledger: gateway payments, refunds, chargebacks and the cost of goods, booked once each.

The chart of accounts and worked entries: docs/accounting.md. Services never
commit: each booking runs in the caller's transaction, next to the payment,
delivery or refund it records; the cost of goods of agents' and marketplaces'
orders is booked by the worker from an outbox event their transaction writes
(`book_deliveries_later`, handled in `tasks`). `check_books` proves the ledger agrees with
orders and payments and names every disagreement.

The public surface is what this module exports; other modules use only that.
"""

from kaquan.accounting import tasks as _tasks  # noqa: F401  (registers the outbox handler)
from kaquan.accounting.adjusting import CounterAccount, book_adjustment
from kaquan.accounting.booking import (
    COST_OF_GOODS_TOPIC,
    book_chargeback,
    book_deliveries,
    book_deliveries_later,
    book_delivery,
    book_dispute_won,
    book_payment,
    book_refund,
    book_sale,
    pending_cost_of_goods,
)
from kaquan.accounting.books import PaidRecord, RefundRecord, check_books
from kaquan.accounting.chart import PAYOUT as PAYOUT_KIND
from kaquan.accounting.chart import SETTLEMENT_PAYOUT as SETTLEMENT_PAYOUT_KIND
from kaquan.accounting.errors import InvalidBooking
from kaquan.accounting.fees import fee_returned, gateway_fee, round_half_up
from kaquan.accounting.payouts import book_payout, receive_payout, received_payouts

__all__ = [
    "COST_OF_GOODS_TOPIC",
    "PAYOUT_KIND",
    "SETTLEMENT_PAYOUT_KIND",
    "CounterAccount",
    "InvalidBooking",
    "PaidRecord",
    "RefundRecord",
    "book_adjustment",
    "book_chargeback",
    "book_deliveries",
    "book_deliveries_later",
    "book_delivery",
    "book_dispute_won",
    "book_payment",
    "book_payout",
    "book_refund",
    "book_sale",
    "check_books",
    "fee_returned",
    "gateway_fee",
    "pending_cost_of_goods",
    "receive_payout",
    "received_payouts",
    "round_half_up",
]
