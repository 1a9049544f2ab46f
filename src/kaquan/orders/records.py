"""A channel caller's orders as plain rows, for comparing them with the counterparty's own statement.

`channel_records` is a SELECT, not a list: reconciliation copies it into its own
scratch table in one INSERT … SELECT. Each order that took money is one
`payment` row at its delivery; each refunded order also one `refund` row at its
refund. Both carry the caller's own key for the order (`ref`: a marketplace's
order id, an agent's out_order_no) and kaquan's order number (`txn_id`).
"""

from datetime import datetime

from sqlalchemy import Select, case, func, literal, select, union_all

from kaquan.orders.models import Order

# What reconciliation calls a payment's state: delivered is paid here; refunded went back.
_STATUS = {"delivered": "succeeded", "refunded": "refunded"}


def channel_records(
    channel: str, source: str, since: datetime, until: datetime, *, fee_rate_bp: int = 0
) -> Select[tuple[object, ...]]:
    """The orders of `channel` and `source` delivered, and those refunded, in [since, until).

    Columns: `kind` ("payment" or "refund"), `ref` (the caller's key), `txn_id`
    (the order number), `amount_minor` (the order's total), `fee_minor` (the
    total at `fee_rate_bp`, rounded down as the channel's booking rounds),
    `currency`, `status` ("succeeded", "refunded"; a refund row "succeeded"),
    `at`.
    """
    delivered_at = func.coalesce(Order.delivered_at, Order.created_at)
    # integer division of non-negative integers: rounded down, as channels' booking rounds
    fee = (Order.total_minor * fee_rate_bp) // 10_000 if fee_rate_bp else literal(0)
    status = case(*((Order.status == ours, theirs) for ours, theirs in _STATUS.items()))
    paid = select(
        literal("payment").label("kind"),
        Order.idempotency_key.label("ref"),
        Order.number.label("txn_id"),
        Order.total_minor.label("amount_minor"),
        fee.label("fee_minor"),
        Order.currency.label("currency"),
        status.label("status"),
        delivered_at.label("at"),
    ).where(
        Order.channel == channel,
        Order.source == source,
        Order.status.in_(tuple(_STATUS)),
        delivered_at >= since,
        delivered_at < until,
    )
    refunded = select(
        literal("refund").label("kind"),
        Order.idempotency_key.label("ref"),
        Order.number.label("txn_id"),
        Order.total_minor.label("amount_minor"),
        fee.label("fee_minor"),
        Order.currency.label("currency"),
        literal("succeeded").label("status"),
        Order.closed_at.label("at"),
    ).where(
        Order.channel == channel,
        Order.source == source,
        Order.status == "refunded",
        Order.closed_at >= since,
        Order.closed_at < until,
    )
    return select(union_all(paid, refunded).subquery())
