"""Settlement runs: a draft statement per counterparty and period, confirmed once, immutable after.

Confirming locks the counterparty's row (two confirmations queue; the second
finds the run confirmed and posts nothing), recomputes the statement (a draft
that the ledger has moved past is `stale_draft`), posts the run's commission,
fee and payout under `settlement:<run id>:commission|fee|payout`, and marks it
confirmed. A store's payout already booked from its settlement export for the
amount the run pays out is adopted instead (`payout_reference`): the payout is
on the ledger once, whichever side saw it first (docs/settlement.md).
Nothing updates a confirmed run; a correction is a ledger adjustment that the
next statement shows.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import ledger
from kaquan.audit import service as audit
from kaquan.kit import clock
from kaquan.kit.db import Database, insert_rows
from kaquan.settlement import periods
from kaquan.settlement.errors import InvalidFormat, InvalidPeriod, InvalidRule, PeriodOverlaps, RunNotFound, StaleDraft
from kaquan.settlement.exports import FORMATS, sheet
from kaquan.settlement.models import SettlementCounterparty, SettlementLine, SettlementRule, SettlementRun
from kaquan.settlement.parties import Party, resolve
from kaquan.settlement.rules import counterparty_row, rule_in_force
from kaquan.settlement.statement import COMMISSION, FEE, PAYOUT, Computed, Terms, compute, figures_of

MAX_LIST = 500


@dataclass(frozen=True)
class Confirmed:
    run: SettlementRun
    posted: bool  # False: it was confirmed already, nothing was posted


async def _confirmed_runs(session: AsyncSession, counterparty_id: int) -> list[SettlementRun]:
    stmt = (
        select(SettlementRun)
        .where(SettlementRun.counterparty_id == counterparty_id, SettlementRun.status == "confirmed")
        .order_by(SettlementRun.period_end)
    )
    return list((await session.execute(stmt)).scalars())


def _refuse_overlap(confirmed: list[SettlementRun], period: periods.Period, counterparty: str) -> None:
    for run in confirmed:
        if run.period_start < period.end and period.start < run.period_end:
            raise PeriodOverlaps(
                f"{counterparty}: confirmed run {run.id} covers {run.first_day}..{run.last_day}, "
                f"which overlaps {period.label}",
                run_id=run.id,
            )


async def _terms(
    session: AsyncSession, party: Party, rule: SettlementRule, period: periods.Period, confirmed: list[SettlementRun]
) -> tuple[Terms, dict[int, datetime]]:
    earlier = [run for run in confirmed if run.period_end <= period.start]
    last = earlier[-1] if earlier else None
    settled_from = last.cutoff if last is not None else period.start
    cutoff = max(settled_from, period.end - timedelta(days=rule.hold_days))
    terms = Terms(
        currency=rule.currency,
        fee_rate_bp=rule.fee_rate_bp,
        tiers=[list(t) for t in rule.tiers],
        minimum_payout_minor=rule.minimum_payout_minor,
        start=period.start,
        end=period.end,
        settled_from=settled_from,
        cutoff=cutoff,
        carried_in=0 if last is None else int(last.figures["carried_out"]),
    )
    return terms, {run.id: run.period_end for run in confirmed}


def adopted_payouts(confirmed: list[SettlementRun]) -> dict[str, int]:
    """The statement payouts confirmed runs adopted: reference → run."""
    return {run.payout_reference: run.id for run in confirmed if run.payout_reference}


async def _compute(
    session: AsyncSession, party: Party, rule: SettlementRule, period: periods.Period, confirmed: list[SettlementRun]
) -> tuple[Terms, Computed]:
    terms, ended = await _terms(session, party, rule, period, confirmed)
    account = await ledger.account_by_code(session, party.balance_account(rule.currency))
    account_id = None if account is None else account.id
    return terms, await compute(session, party, account_id, terms, ended, adopted_payouts(confirmed))


def _dates(text: str) -> tuple[date, date]:
    period = periods.parse_period(text, "UTC")
    return period.first_day, period.last_day


async def create_run(
    db: Database, session: AsyncSession, counterparty: str, period_text: str, *, actor: str
) -> SettlementRun:
    """A draft statement of `counterparty` for `period_text` (`YYYY-MM-DD..YYYY-MM-DD`, local days)."""
    party = await resolve(session, counterparty)
    first_day, last_day = _dates(period_text)
    rule = await rule_in_force(session, counterparty, first_day)
    if party.currency is not None and party.currency != rule.currency:
        raise InvalidRule(f"{counterparty} trades in {party.currency}, its rule says {rule.currency}", field="currency")
    period = periods.period_of(first_day, last_day, rule.time_zone)
    if period.end > clock.now():
        raise InvalidPeriod(f"the period {period.label} has not ended yet", field="period")
    row = await counterparty_row(db, session, counterparty)
    confirmed = await _confirmed_runs(session, row.id)
    _refuse_overlap(confirmed, period, counterparty)
    terms, computed = await _compute(session, party, rule, period, confirmed)
    run = SettlementRun(
        counterparty_id=row.id,
        counterparty=counterparty,
        rule_id=rule.id,
        status="draft",
        currency=rule.currency,
        first_day=first_day,
        last_day=last_day,
        period_start=period.start,
        period_end=period.end,
        settled_from=terms.settled_from,
        cutoff=terms.cutoff,
        figures=computed.figures.as_dict(),
        created_by=actor,
        created_at=clock.now(),
    )
    session.add(run)
    await session.flush()
    await insert_rows(
        session,
        SettlementLine.__table__,  # type: ignore[arg-type]
        [
            {
                "run_id": run.id,
                "at": line.at,
                "kind": line.kind,
                "reference": line.reference,
                "order_no": line.order_no,
                "gross_minor": line.gross_minor,
                "fee_minor": line.fee_minor,
                "amount_minor": line.amount_minor,
                "in_period": line.in_period,
                "settled": line.settled,
            }
            for line in computed.lines
        ],
    )
    await audit.record(
        session,
        actor,
        "settlement.run_created",
        target=f"settlement:{run.id}",
        after={"counterparty": counterparty, "period": period.label, "closing_minor": computed.figures.closing},
    )
    return run


async def get_run(session: AsyncSession, run_id: int) -> SettlementRun:
    stmt = select(SettlementRun).where(SettlementRun.id == run_id).execution_options(populate_existing=True)
    run = (await session.execute(stmt)).scalar_one_or_none()
    if run is None:
        raise RunNotFound(f"no settlement run {run_id}", run_id=run_id)
    return run


async def list_runs(
    session: AsyncSession, *, counterparty: str | None = None, status: str | None = None, limit: int = 100
) -> list[SettlementRun]:
    stmt = select(SettlementRun).order_by(SettlementRun.id.desc()).limit(min(max(limit, 1), MAX_LIST))
    if counterparty is not None:
        stmt = stmt.where(SettlementRun.counterparty == counterparty)
    if status is not None:
        stmt = stmt.where(SettlementRun.status == status)
    return list((await session.execute(stmt)).scalars())


async def lines_of(session: AsyncSession, run_id: int) -> list[SettlementLine]:
    stmt = select(SettlementLine).where(SettlementLine.run_id == run_id).order_by(SettlementLine.id)
    return list((await session.execute(stmt)).scalars())


async def _account(db: Database, session: AsyncSession, code: str, currency: str, normal: str) -> int:
    found = await ledger.account_by_code(session, code)
    if found is None:
        found = await ledger.open_account(db, session, code, currency=currency, normal=normal)  # type: ignore[arg-type]
    return found.id


async def _post(
    db: Database, session: AsyncSession, party: Party, run: SettlementRun, actor: str, *, payout_adopted: bool
) -> None:
    figures = figures_of(run.figures)
    cur = run.currency
    balance = await _account(
        db, session, party.balance_account(cur), cur, "credit" if party.kind == "agent" else "debit"
    )
    # The commission (our expense) and the payout (the store's money in our bank) credit the statement's account.
    plan = (
        (COMMISSION, figures.commission_posted, f"commissions:{cur}"),
        (PAYOUT, 0 if payout_adopted else figures.payout_posted, f"bank:{cur}"),
    )
    for kind, amount, other in plan:
        if amount:
            other_id = await _account(db, session, other, cur, "debit")
            await _transfer(db, session, run, kind, amount, debit=other_id, credit=balance, actor=actor)
    if figures.fee_posted:
        if party.kind == "agent":
            income = await _account(db, session, f"fee_income:{cur}", cur, "credit")
            await _transfer(db, session, run, FEE, figures.fee_posted, debit=balance, credit=income, actor=actor)
        else:
            fees = await _account(db, session, party.fees_account(cur), cur, "debit")
            await _transfer(db, session, run, FEE, figures.fee_posted, debit=fees, credit=balance, actor=actor)


async def _transfer(
    db: Database,
    session: AsyncSession,
    run: SettlementRun,
    kind: str,
    amount: int,
    *,
    debit: int,
    credit: int,
    actor: str,
) -> None:
    what = kind.removeprefix("settlement_")
    await ledger.post(
        db,
        session,
        ledger.TransferSpec(
            kind=kind,
            legs=(ledger.Leg(debit, amount), ledger.Leg(credit, -amount)),
            reference=f"settlement:{run.id}:{what}",
            memo=f"settlement {run.id} {run.counterparty} {run.first_day}..{run.last_day}: {what}",
        ),
        actor=actor,
    )


async def confirm(db: Database, session: AsyncSession, run_id: int, *, actor: str) -> Confirmed:
    """Confirm a draft: post its commission, fee and payout once; a confirmed run is answered as it is."""
    run = await get_run(session, run_id)
    await session.execute(
        db.lock(select(SettlementCounterparty.id).where(SettlementCounterparty.id == run.counterparty_id))
    )
    run = await get_run(session, run_id)
    if run.status == "confirmed":
        return Confirmed(run, posted=False)
    party = await resolve(session, run.counterparty)
    rule = (await session.execute(select(SettlementRule).where(SettlementRule.id == run.rule_id))).scalar_one()
    period = periods.period_of(run.first_day, run.last_day, rule.time_zone)
    confirmed = await _confirmed_runs(session, run.counterparty_id)
    _refuse_overlap(confirmed, period, run.counterparty)
    _, computed = await _compute(session, party, rule, period, confirmed)
    if computed.figures.as_dict() != run.figures:
        raise StaleDraft(
            f"settlement run {run.id}: the ledger moved since the draft was made; run the period again",
            run_id=run.id,
        )
    await _post(db, session, party, run, actor, payout_adopted=computed.payout_reference is not None)
    run.status, run.confirmed_by, run.confirmed_at = "confirmed", actor, clock.now()
    run.payout_reference = computed.payout_reference
    await session.flush()
    await audit.record(
        session,
        actor,
        "settlement.run_confirmed",
        target=f"settlement:{run.id}",
        before={"status": "draft"},
        after={
            "status": "confirmed",
            **{k: run.figures[k] for k in ("commission_posted", "fee_posted", "payout_posted")},
            "payout_reference": run.payout_reference,
        },
    )
    return Confirmed(run, posted=True)


async def time_zone_of(session: AsyncSession, run: SettlementRun) -> str:
    rule = (await session.execute(select(SettlementRule).where(SettlementRule.id == run.rule_id))).scalar_one()
    return rule.time_zone


async def statement_of(session: AsyncSession, counterparty: str, run_id: int) -> SettlementRun:
    """A confirmed statement of this counterparty only: another's, or a draft, is not found."""
    run = await get_run(session, run_id)
    if run.counterparty != counterparty or run.status != "confirmed":
        raise RunNotFound(f"no settlement statement {run_id}", run_id=run_id)
    return run


@dataclass(frozen=True)
class StatementFile:
    media_type: str
    filename: str
    content: bytes


async def statement_file(session: AsyncSession, run: SettlementRun, fmt: str) -> StatementFile:
    """The statement in `fmt` (csv, xlsx or pdf)."""
    if fmt not in FORMATS:
        raise InvalidFormat(f"format is one of {', '.join(FORMATS)}, not {fmt!r}", field="format")
    media_type, render = FORMATS[fmt]
    data = sheet(run, await lines_of(session, run.id), await time_zone_of(session, run))
    name = f"statement-{run.id}-{run.counterparty.replace(':', '-')}-{run.first_day}-{run.last_day}.{fmt}"
    return StatementFile(media_type, name, render(data))
