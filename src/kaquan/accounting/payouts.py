"""A counterparty's payout to the bank, clearing what it owed us: Dr `bank:<cur>`, Cr its receivable.

A marketplace collects the buyers' money and owes it to us, net of its fee,
on `receivable:marketplace:<store>:<cur>`; when its payout arrives (a payout
line of the store's settlement export, matched by reconciliation) the money is
in our bank and the receivable goes down by as much. `bank:<cur>` is the
clearing account of money received at the bank, debit-normal (an asset).
Booked once under `payout:<reference>`: booking it again changes nothing,
other amounts under the same reference are an `IdempotencyConflict`.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.accounting import chart
from kaquan.accounting.booking import ACTOR, MAX_REFERENCE, _Planned, _post_once
from kaquan.accounting.errors import InvalidBooking
from kaquan.kit.db import Database


async def book_payout(
    db: Database,
    session: AsyncSession,
    *,
    receivable: str,
    currency: str,
    amount_minor: int,
    reference: str,
    memo: str,
    actor: str = ACTOR,
) -> str:
    """Post the payout under `payout:<reference>` and return that reference."""
    if not 1 <= len(reference) <= MAX_REFERENCE:
        raise InvalidBooking(f"reference is 1 to {MAX_REFERENCE} characters", reference=reference)
    if type(amount_minor) is not int or amount_minor <= 0:
        raise InvalidBooking("a payout is a positive whole number of minor units", amount_minor=repr(amount_minor))
    if not receivable.startswith("receivable:"):
        raise InvalidBooking("a payout clears a receivable account", account=receivable)
    full = f"payout:{reference}"
    legs = ((chart.bank(currency), currency, amount_minor), (receivable, currency, -amount_minor))
    await _post_once(db, session, [_Planned(chart.PAYOUT, full, memo[:200], legs)], actor=actor)
    return full
