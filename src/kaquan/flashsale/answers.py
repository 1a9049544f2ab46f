"""What a buyer is told about a purchase: won (with the order to pay), sold out, over the limit, or a ticket to poll."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from kaquan.flashsale.committer import Committed
from kaquan.flashsale.errors import EventEnded
from kaquan.kit.errors import IdempotencyConflict
from kaquan.orders.service import OrderKeys
from kaquan.payments import service as payments
from kaquan.payments.gateway import Gateway

Result = Literal["won", "sold_out", "limit_reached", "queued"]


@dataclass(frozen=True)
class Answer:
    """What the buyer is told. `won` carries the order to pay; `queued` a ticket to poll."""

    result: Result
    ticket: str | None = None
    order_no: str | None = None
    lookup_secret: str | None = None
    pay_url: str | None = None
    quantity: int | None = None
    total_minor: int | None = None
    currency: str | None = None
    pay_before: datetime | None = None


def answer_of_settled(state: str | None, event_id: int) -> Answer | None:
    """The answer to a request the gate has settled without an order (None: the gate's state does not say)."""
    if state == "sold_out":
        return Answer("sold_out")
    if state == "limit_reached":
        return Answer("limit_reached")
    if state == "closed":
        raise EventEnded(event_id)
    return None


def answer_of_committed(
    committed: Committed, event_id: int, *, order_keys: OrderKeys, gateway: Gateway | None
) -> Answer:
    """What the database decided for a purchase, as the buyer is told it: a won one with its pay link."""
    if committed.outcome in ("won", "replayed") and committed.order_number is not None:
        return Answer(
            "won",
            order_no=committed.order_number,
            lookup_secret=order_keys.lookup_secret(committed.order_number),
            pay_url=payments.pay_path(committed.payment_token)
            if committed.payment_token and gateway is not None
            else None,
            quantity=committed.quantity,
            total_minor=committed.total_minor,
            currency=committed.currency,
            pay_before=committed.pay_before,
        )
    settled = answer_of_settled(committed.outcome, event_id)
    if settled is not None:
        return settled
    raise IdempotencyConflict("this request_id was used for a different purchase")
