"""A statement computed from the ledger: opening, movements by kind, what this run posts, closing.

Arithmetic (every figure in fen, signed as it moves the counterparty's balance
in the account's normal sign):

    closing = opening + sales + refunds + fees + commissions + top_ups + adjustments + payouts

`opening` is the balance at the period start with the postings of earlier runs
counted at their own period end (a run posts after its period, but its
statement closes with them). The period's movements are every posting on the
account in [start, end) except earlier runs' own; this run's commission, fee
and payout are added to the commissions, fees and payouts.

A run's own postings are its `settlement:<run>:…` transfers and, for a store,
the payout it adopted: a payout already booked from the store's settlement
export (kind `payout`, `accounting.received_payouts`) for exactly the amount
the run pays out, which the run takes as its payout instead of posting it
again (`adopted`: that payout's reference → the run). A statement payout no
run adopted is a movement among the payouts of the period it was booked in.
"""

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import accounting, ledger
from kaquan.settlement.parties import Party
from kaquan.settlement.rules import share_of, tier_rate

COMMISSION, FEE, PAYOUT = "settlement_commission", "settlement_fee", "settlement_payout"
SETTLEMENT_KINDS = (COMMISSION, FEE, PAYOUT)
FIGURES = ("sales", "refunds", "fees", "commissions", "top_ups", "adjustments", "payouts")
THIS_RUN = 0  # the run being computed, in `ended` and `adopted`, before it has an id


@dataclass(frozen=True)
class Line:
    at: datetime
    kind: str
    reference: str
    order_no: str | None
    gross_minor: int
    fee_minor: int
    amount_minor: int
    in_period: bool
    settled: bool


@dataclass
class Figures:
    opening: int = 0
    sales: int = 0
    refunds: int = 0
    fees: int = 0
    commissions: int = 0
    top_ups: int = 0
    adjustments: int = 0
    payouts: int = 0
    closing: int = 0
    # What this run settles and posts
    settled_sales: int = 0  # volume: positive for sales, whatever the account's side
    settled_refunds: int = 0
    net_settled: int = 0
    held_sales: int = 0
    held_refunds: int = 0
    tier_rate_bp: int = 0
    commission: int = 0
    carried_in: int = 0
    commission_posted: int = 0
    fee_posted: int = 0
    payable: int = 0
    payout_posted: int = 0
    carried_out: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def movements(self) -> int:
        return sum(getattr(self, name) for name in FIGURES)


@dataclass
class Computed:
    figures: Figures
    lines: list[Line] = field(default_factory=list)
    payout_reference: str | None = None  # the statement payout this run adopts instead of posting its own


@dataclass(frozen=True)
class Terms:
    """What the run applies: the rule's figures and the windows."""

    currency: str
    fee_rate_bp: int
    tiers: list[list[int]]
    minimum_payout_minor: int
    start: datetime
    end: datetime
    settled_from: datetime
    cutoff: datetime
    carried_in: int


def run_id_of(reference: str | None) -> int | None:
    """The run a settlement posting's reference `settlement:<id>:<what>` names."""
    parts = (reference or "").split(":")
    return int(parts[1]) if len(parts) == 3 and parts[0] == "settlement" and parts[1].isdigit() else None


async def all_entries(
    session: AsyncSession,
    account_id: int,
    *,
    since: datetime | None,
    until: datetime | None = None,
    kinds: Sequence[str] | None = None,
) -> list[ledger.Entry]:
    found: list[ledger.Entry] = []
    after: int | None = None
    while True:
        page = await ledger.entries(
            session, account_id, since=since, until=until, after_id=after, limit=ledger.MAX_PAGE, kinds=kinds
        )
        found += page
        if len(page) < ledger.MAX_PAGE:
            return found
        after = page[-1].posting_id


def run_of(entry: ledger.Entry, adopted: dict[str, int]) -> int | None:
    """The run a posting belongs to: the run its settlement reference names, or the run that adopted it."""
    if entry.kind in SETTLEMENT_KINDS:
        return run_id_of(entry.reference)
    if entry.kind == accounting.PAYOUT_KIND:
        return adopted.get(entry.reference or "")
    return None


async def settled_balance(
    session: AsyncSession,
    account_id: int,
    at: datetime,
    ended: dict[int, datetime],
    adopted: dict[str, int] | None = None,
) -> int:
    """The balance at `at`, with each run's own postings counted at its period end, whenever they were posted
    (`ended`: run → end; `adopted`: a statement payout's reference → the run that adopted it)."""
    adopted = adopted or {}
    kinds = (*SETTLEMENT_KINDS, accounting.PAYOUT_KIND) if adopted else SETTLEMENT_KINDS
    later = await all_entries(session, account_id, since=at, kinds=kinds)
    owed = sum(e.amount_minor for e in later if (run := run_of(e, adopted)) in ended and ended[run] <= at)
    if adopted:  # a payout booked before `at` whose run ends after it counts only from then
        earlier = await all_entries(session, account_id, since=None, until=at, kinds=[accounting.PAYOUT_KIND])
        owed -= sum(
            e.amount_minor
            for e in earlier
            if (run := adopted.get(e.reference or "")) is not None and not (run in ended and ended[run] <= at)
        )
    return await ledger.balance_as_of(session, account_id, at) + owed


async def _lines(
    session: AsyncSession, party: Party, account_id: int, terms: Terms, adopted: dict[str, int]
) -> list[Line]:
    since = min(terms.settled_from, terms.start)
    entries = [
        e
        for e in await all_entries(session, account_id, since=since, until=terms.end)
        if e.kind not in SETTLEMENT_KINDS and run_of(e, adopted) is None
    ]
    refs = {kind: [e.reference or "" for e in entries if e.kind == kind] for kind in ("order", "refund")}
    transfers = {kind: await ledger.posted(session, kind, refs[kind]) for kind in refs}
    fees_code = party.fees_account(terms.currency)
    lines = []
    for entry in entries:
        order_no = None
        fee = 0
        if entry.kind in ("order", "refund") and entry.reference:
            order_no = entry.reference.partition(":")[2] or None
            found = transfers[entry.kind].get(entry.reference)
            # A fee the channel kept moves the balance against the sale: -(its debit) in the balance's sign.
            fee = -found.moved(fees_code) * party.sale_sign if found else 0
        gross = entry.amount_minor - fee if entry.kind in ("order", "refund") else 0
        lines.append(
            Line(
                at=entry.at,
                kind=entry.kind,
                reference=entry.reference or "",
                order_no=order_no,
                gross_minor=gross,
                fee_minor=fee,
                amount_minor=entry.amount_minor,
                in_period=entry.at >= terms.start,
                settled=terms.settled_from <= entry.at < terms.cutoff,
            )
        )
    return lines


def _bucket(figures: Figures, line: Line) -> None:
    if line.kind == "order":
        figures.sales += line.gross_minor
        figures.fees += line.fee_minor
    elif line.kind == "refund":
        figures.refunds += line.gross_minor
        figures.fees += line.fee_minor
    elif line.kind == "topup":
        figures.top_ups += line.amount_minor
    elif line.kind == accounting.PAYOUT_KIND:
        figures.payouts += line.amount_minor
    else:
        figures.adjustments += line.amount_minor


async def compute(
    session: AsyncSession,
    party: Party,
    account_id: int | None,
    terms: Terms,
    ended: dict[int, datetime],
    adopted: dict[str, int],
) -> Computed:
    """The statement of one counterparty under `terms`; `account_id` None: the account was never opened.

    `ended` and `adopted` describe the confirmed runs (their period ends, the payouts they adopted).
    """
    figures = Figures(carried_in=terms.carried_in)
    lines = [] if account_id is None else await _lines(session, party, account_id, terms, adopted)
    _settle(figures, party, terms, lines)
    payout_reference = None
    if account_id is not None and party.kind == "marketplace" and figures.payout_posted:
        payout_reference = await _adoptable(session, party, terms, figures.payout_posted, adopted)
    if payout_reference is not None:
        lines = [line for line in lines if line.reference != payout_reference or line.kind != accounting.PAYOUT_KIND]
        adopted, ended = {**adopted, payout_reference: THIS_RUN}, {**ended, THIS_RUN: terms.end}
    for line in lines:
        if line.in_period:
            _bucket(figures, line)
    if account_id is not None:
        figures.opening = await settled_balance(session, account_id, terms.start, ended, adopted)
    figures.closing = figures.opening + figures.movements()
    return Computed(figures, lines, payout_reference)


def _settle(figures: Figures, party: Party, terms: Terms, lines: list[Line]) -> None:
    """What the run settles, its commission and fee, and what it posts or carries over."""
    for line in lines:
        volume = line.gross_minor * party.sale_sign
        if line.kind == "order":
            if line.settled:
                figures.settled_sales += volume
            elif line.in_period:
                figures.held_sales += volume
        elif line.kind == "refund":
            if line.settled:
                figures.settled_refunds -= volume
            elif line.in_period:
                figures.held_refunds -= volume
    figures.net_settled = figures.settled_sales - figures.settled_refunds
    figures.tier_rate_bp = tier_rate(terms.tiers, figures.net_settled)
    figures.commission = share_of(figures.net_settled, figures.tier_rate_bp)
    figures.fee_posted = share_of(figures.net_settled, terms.fee_rate_bp)
    figures.fees -= figures.fee_posted
    minimum = max(terms.minimum_payout_minor, 1)
    if party.kind == "agent":
        # The commission is paid into the agent's deposit; below the minimum it waits for the next run.
        due = figures.payable = figures.commission + terms.carried_in
        figures.commission_posted = due if due >= minimum else 0
        figures.carried_out = due - figures.commission_posted
        figures.commissions += figures.commission_posted
    else:
        # The store pays us what its settled orders left on the receivable, less its rebate and fee.
        figures.commission_posted = figures.commission
        figures.commissions -= figures.commission
        settled_net = sum(line.amount_minor for line in lines if line.settled and line.kind in ("order", "refund"))
        figures.payable = settled_net - figures.fee_posted - figures.commission + terms.carried_in
        figures.payout_posted = figures.payable if figures.payable >= minimum else 0
        figures.carried_out = figures.payable - figures.payout_posted
        figures.payouts -= figures.payout_posted


async def _adoptable(
    session: AsyncSession, party: Party, terms: Terms, amount: int, adopted: dict[str, int]
) -> str | None:
    """The oldest payout booked from the store's export since the run's settled window opened, for exactly what
    the run pays out, that no run adopted yet: the money this run's payout stands for came in already."""
    received = await accounting.received_payouts(
        session, party.balance_account(terms.currency), amount, since=terms.settled_from
    )
    return next((e.reference for e in received if e.reference and e.reference not in adopted), None)


def figures_of(stored: dict[str, Any]) -> Figures:
    return Figures(**{name: int(value) for name, value in stored.items()})
