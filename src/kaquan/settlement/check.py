"""`settlement.check`: every confirmed statement agrees with its lines, the ledger and the orders.

For each confirmed run it names:
- a figure that is not the sum of its lines (sales, refunds, fees, top-ups, adjustments), or a closing
  balance that is not opening plus movements;
- a closing balance other than the ledger's balance at the period end with the run's own (later)
  postings counted;
- a commission, fee or payout posted not exactly once, or for another amount (a store's payout the run
  adopted from its settlement export counts as the run's, and its own must then not be posted);
- a sale or refund line whose order does not exist, belongs to someone else, or has another total.
A settlement posting that names no confirmed run is named too.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import accounting, ledger
from kaquan.kit.errors import NotFound
from kaquan.kit.money import display
from kaquan.orders import service as orders
from kaquan.settlement.models import SettlementLine, SettlementRun
from kaquan.settlement.parties import resolve
from kaquan.settlement.statement import (
    FIGURES,
    PAYOUT,
    SETTLEMENT_KINDS,
    figures_of,
    run_id_of,
    settled_balance,
)


@dataclass
class SettlementCheck:
    runs: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _line_sums(lines: list[SettlementLine]) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for line in lines:
        if not line.in_period:
            continue
        if line.kind == "order":
            sums["sales"] += line.gross_minor
            sums["fees"] += line.fee_minor
        elif line.kind == "refund":
            sums["refunds"] += line.gross_minor
            sums["fees"] += line.fee_minor
        elif line.kind == "topup":
            sums["top_ups"] += line.amount_minor
        elif line.kind == accounting.PAYOUT_KIND:
            sums["payouts"] += line.amount_minor
        else:
            sums["adjustments"] += line.amount_minor
    return sums


async def _check_run(
    session: AsyncSession, run: SettlementRun, confirmed: list[SettlementRun], problems: list[str]
) -> None:
    name = f"settlement run {run.id} ({run.counterparty} {run.first_day}..{run.last_day})"
    shown = partial(display, currency=run.currency)
    figures = figures_of(run.figures)
    lines = list((await session.execute(select(SettlementLine).where(SettlementLine.run_id == run.id))).scalars())
    sums = _line_sums(lines)
    posted_here = {"fees": figures.fee_posted, "payouts": figures.payout_posted}
    for figure in ("sales", "refunds", "fees", "top_ups", "adjustments", "payouts"):
        expected = sums[figure] - posted_here.get(figure, 0)
        if getattr(figures, figure) != expected:
            problems.append(f"{name}: {figure} is {shown(getattr(figures, figure))}, its lines say {shown(expected)}")
    if figures.opening + sum(getattr(figures, f) for f in FIGURES) != figures.closing:
        problems.append(
            f"{name}: opening {shown(figures.opening)} plus its movements is not its closing {shown(figures.closing)}"
        )
    party = await resolve(session, run.counterparty)
    account = await ledger.account_by_code(session, party.balance_account(run.currency))
    own = [r for r in confirmed if r.counterparty_id == run.counterparty_id]
    ended = {r.id: r.period_end for r in own}
    adopted = {r.payout_reference: r.id for r in own if r.payout_reference}
    on_ledger = 0 if account is None else await settled_balance(session, account.id, run.period_end, ended, adopted)
    if on_ledger != figures.closing:
        problems.append(
            f"{name}: closing balance {shown(figures.closing)}, the ledger says {shown(on_ledger)} at the period end"
        )
    for kind, amount in (
        ("settlement_commission", figures.commission_posted),
        ("settlement_fee", figures.fee_posted),
        ("settlement_payout", figures.payout_posted),
    ):
        reference = f"settlement:{run.id}:{kind.removeprefix('settlement_')}"
        found = (await ledger.posted(session, kind, [reference])).get(reference)
        posted = 0 if found is None else max(leg.debit_minor for leg in found.legs)
        if kind == PAYOUT and run.payout_reference:
            if found is not None:
                problems.append(f"{name}: its payout is posted twice, as {reference} and {run.payout_reference}")
            reference = run.payout_reference
            found = (await ledger.posted(session, accounting.PAYOUT_KIND, [reference])).get(reference)
            posted = 0 if found is None else max(leg.debit_minor for leg in found.legs)
        if posted != amount:
            problems.append(f"{name}: {reference} is posted for {shown(posted)}, the statement says {shown(amount)}")
    for line in lines:
        if line.kind not in ("order", "refund") or line.order_no is None:
            continue
        try:
            order = await orders.by_number(session, line.order_no)
        except NotFound:
            problems.append(f"{name}: order {line.order_no} of its {line.kind} line does not exist")
            continue
        volume = abs(line.gross_minor)
        if (order.channel, order.source) != (party.order_channel, party.order_source):
            problems.append(f"{name}: order {line.order_no} belongs to {order.channel}/{order.source}, not to it")
        elif (order.total_minor != volume) if line.kind == "order" else (volume > order.total_minor):
            total, says = shown(order.total_minor), shown(volume)
            problems.append(f"{name}: order {line.order_no} totals {total}, its {line.kind} line says {says}")


async def check(session: AsyncSession) -> SettlementCheck:
    confirmed = list(
        (
            await session.execute(
                select(SettlementRun).where(SettlementRun.status == "confirmed").order_by(SettlementRun.id)
            )
        ).scalars()
    )
    result = SettlementCheck(runs=len(confirmed))
    for run in confirmed:
        await _check_run(session, run, confirmed, result.problems)
    known = {run.id for run in confirmed}
    for transfer in await ledger.posted_of_kinds(session, SETTLEMENT_KINDS):
        if run_id_of(transfer.reference) not in known:
            result.problems.append(f"ledger transfer {transfer.id} ({transfer.reference}) names no confirmed run")
    return result
