"""Settling a difference between a gateway's statement and kaquan's books: one adjustment transfer, once.

Reconciliation measures a difference as two numbers: how far the gateway's
receivable on the ledger is from what the gateway's statement says it holds
(`receivable_minor`, positive when the gateway holds more), and how far the
fee booked is from the fee the statement shows (`fee_minor`, positive when the
gateway charged more). The adjustment moves the receivable and the fee account
by those amounts and balances the rest against a counter-account:
- `suspense`: the statement's figure is accepted but not explained yet (an
  unknown receipt waits there until someone places it);
- `writeoff`: the difference is written off as a loss (or a gain).
A fee difference alone moves only the receivable and the fee, so it needs no
counter-account at all. Adjustments never touch sales, so `check_books` keeps
agreeing with the payments.
"""

from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.accounting import chart
from kaquan.accounting.booking import ACTOR, MAX_REFERENCE, _Planned, _post_once
from kaquan.accounting.errors import InvalidBooking
from kaquan.kit.db import Database

CounterAccount = Literal["suspense", "writeoff"]


async def book_adjustment(
    db: Database,
    session: AsyncSession,
    *,
    gateway: str,
    currency: str,
    reference: str,
    receivable_minor: int,
    fee_minor: int,
    counter: CounterAccount,
    memo: str,
    actor: str = ACTOR,
) -> str | None:
    """Post the adjustment under `adjustment:<reference>`; returns that reference, or None when nothing moves.

    Posting the same reference again with the same amounts does nothing; other amounts are an
    `IdempotencyConflict`.
    """
    if not 1 <= len(reference) <= MAX_REFERENCE:
        raise InvalidBooking(f"reference is 1 to {MAX_REFERENCE} characters", reference=reference)
    if type(receivable_minor) is not int or type(fee_minor) is not int:
        raise InvalidBooking("adjustments are whole minor units", receivable_minor=repr(receivable_minor))
    balancing = -(receivable_minor + fee_minor)
    counter_code = chart.suspense(gateway, currency) if counter == "suspense" else chart.writeoff(gateway, currency)
    legs = (
        (chart.receivable(gateway, currency), currency, receivable_minor),
        (chart.fees(gateway, currency), currency, fee_minor),
        (counter_code, currency, balancing),
    )
    if not any(amount for _, _, amount in legs):
        return None
    full = f"adjustment:{reference}"
    await _post_once(db, session, [_Planned(chart.ADJUSTMENT, full, memo, legs)], actor=actor)
    return full
