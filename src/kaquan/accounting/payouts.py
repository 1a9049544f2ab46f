"""A counterparty's payout to the bank, clearing what it owed us: Dr `bank:<cur>`, Cr its receivable.

A marketplace collects the buyers' money and owes it to us, net of its fee,
on `receivable:marketplace:<store>:<cur>`; when its payout arrives (a payout
line of the store's settlement export, matched by reconciliation) the money is
in our bank and the receivable goes down by as much. `bank:<cur>` is the
clearing account of money received at the bank, debit-normal (an asset).
Booked once under `payout:<reference>`: booking it again changes nothing,
other amounts under the same reference are an `IdempotencyConflict`.

A store's payout can be seen from two sides: the payout line of its
settlement export (reconciliation) and a confirmed settlement run's payout
(settlement, kind `settlement_payout`). It is on the ledger once, posted by
whichever side saw it first; the other links to it. `receive_payout` is
reconciliation's side: it links a payout line to a settlement payout of the
same amount on the same receivable that no line links to yet, and books only
when there is none. Settlement's side (`settlement.runs.confirm`) adopts a
`payout` booked here of the amount it would post (`received_payouts`).
"""

from collections.abc import Collection
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import ledger
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


async def receive_payout(
    db: Database,
    session: AsyncSession,
    *,
    receivable: str,
    currency: str,
    amount_minor: int,
    reference: str,
    memo: str,
    linked: Collection[str],
    actor: str = ACTOR,
) -> str:
    """The payout a statement line shows, on the ledger once; returns the ledger reference it is on.

    `payout:<reference>` when this line booked it before; else the oldest
    settlement payout of `amount_minor` crediting `receivable` whose reference
    is not in `linked` (those other lines link to), posting nothing; else it is
    booked now (`book_payout`).
    """
    own = f"payout:{reference}"
    if (await ledger.posted(session, chart.PAYOUT, [own])).get(own) is not None:
        return own
    for posted in await _credits(session, receivable, chart.SETTLEMENT_PAYOUT, amount_minor, since=None):
        if posted.reference and posted.reference not in linked:
            return posted.reference
    return await book_payout(
        db,
        session,
        receivable=receivable,
        currency=currency,
        amount_minor=amount_minor,
        reference=reference,
        memo=memo,
        actor=actor,
    )


async def received_payouts(
    session: AsyncSession, receivable: str, amount_minor: int, *, since: datetime
) -> list[ledger.Entry]:
    """The payouts booked from statements (kind `payout`) that credited `receivable` by `amount_minor` at or
    after `since`, oldest first: what a settlement run may adopt instead of posting its own."""
    return await _credits(session, receivable, chart.PAYOUT, amount_minor, since=since)


async def _credits(
    session: AsyncSession, receivable: str, kind: str, amount_minor: int, *, since: datetime | None
) -> list[ledger.Entry]:
    account = await ledger.account_by_code(session, receivable)
    if account is None:
        return []
    found: list[ledger.Entry] = []
    after: int | None = None
    while True:
        page = await ledger.entries(
            session, account.id, since=since, after_id=after, limit=ledger.MAX_PAGE, kinds=[kind]
        )
        found += [entry for entry in page if entry.amount_minor == -amount_minor]
        if len(page) < ledger.MAX_PAGE:
            return found
        after = page[-1].posting_id
