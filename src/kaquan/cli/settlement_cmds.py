"""`kaquan settlement …`: rules per agent and channel, statement runs, confirmation, exports, the check."""

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from kaquan import settlement
from kaquan.cli.common import console, errors, run
from kaquan.cli.confirm import YesFlag, confirmed
from kaquan.cli.output import JsonFlag, emit_json, money_json, show, table
from kaquan.runtime import Runtime
from kaquan.settlement.rules import DEFAULT_TIME_ZONE

ACTOR = "cli"
settlement_app = typer.Typer(
    help="Settlement: rules, statements (结算单), confirmation, exports.", no_args_is_help=True
)
rules_app = typer.Typer(help="Settlement rules per counterparty.", no_args_is_help=True)
settlement_app.add_typer(rules_app, name="rules")
Counterparty = Annotated[str, typer.Option("--counterparty", help="agent:<code> or marketplace:<store>")]


@rules_app.command("set")
def set_rule(
    counterparty: Annotated[str, typer.Argument(help="agent:<code> or marketplace:<store>")],
    cycle: Annotated[str, typer.Option(help="daily (T+1), weekly (Mon-Sun) or monthly")] = "monthly",
    fee_bp: Annotated[int, typer.Option(help="fee at settlement, basis points of net sales")] = 0,
    tiers: Annotated[
        str, typer.Option(help="commission tiers THRESHOLD_FEN:RATE_BP,…, e.g. 1000000:100,5000000:200")
    ] = "",
    minimum_payout: Annotated[int, typer.Option(help="minimum payout in fen; below it the amount carries over")] = 0,
    hold_days: Annotated[int, typer.Option(help="sales younger than this at period end wait for the next run")] = 0,
    currency: Annotated[str, typer.Option()] = "CNY",
    time_zone: Annotated[
        str, typer.Option(help="the merchant's time zone; periods are its local days")
    ] = DEFAULT_TIME_ZONE,
    effective_from: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: today, local)")] = None,
) -> None:
    """Add a rule version for a counterparty (audited)."""
    try:
        effective = None if effective_from is None else date.fromisoformat(effective_from)
    except ValueError:
        errors.print(f"--effective-from is YYYY-MM-DD, not {effective_from!r}", highlight=False, markup=False)
        raise SystemExit(2) from None

    async def work(rt: Runtime) -> dict[str, object]:
        rule = settlement.RuleInput(
            currency=currency,
            fee_rate_bp=fee_bp,
            tiers=settlement.parse_tiers(tiers),
            cycle=cycle,
            minimum_payout_minor=minimum_payout,
            hold_days=hold_days,
            time_zone=time_zone,
            effective_from=effective,
        )
        async with rt.db.transaction() as session:
            return settlement.describe(await settlement.set_rule(rt.db, session, counterparty, rule, actor=ACTOR))

    console.print_json(data={"counterparty": counterparty, **run(work)})


def _print_run(run_: settlement.SettlementRun) -> None:
    figures = settlement.figures_of(run_.figures)
    listed = table(
        "", "", title=f"结算单 statement {run_.id} · {run_.counterparty} · {run_.first_day}..{run_.last_day}"
    )
    for label, value in (
        ("状态 status", run_.status),
        ("期初 opening", figures.opening),
        ("销售 sales", figures.sales),
        ("退款 refunds", figures.refunds),
        ("手续费 fees", figures.fees),
        ("返佣 commissions", figures.commissions),
        ("充值 top-ups", figures.top_ups),
        ("调整 adjustments", figures.adjustments),
        ("付款 payouts", figures.payouts),
        ("期末 closing", figures.closing),
        ("结转 carried out", figures.carried_out),
    ):
        listed.add_row(label, value if isinstance(value, str) else settlement.money(value, run_.currency))
    show(listed)


@settlement_app.command("run")
def run_period(
    counterparty: Counterparty,
    period: Annotated[str, typer.Option(help="local days, both included: 2026-12-01..2026-12-31")],
) -> None:
    """Compute a draft statement for a counterparty and period (nothing is posted until `confirm`)."""

    async def work(rt: Runtime) -> settlement.SettlementRun:
        async with rt.db.transaction() as session:
            return await settlement.create_run(rt.db, session, counterparty, period, actor=ACTOR)

    _print_run(run(work))


@settlement_app.command("confirm")
def confirm(run_id: Annotated[int, typer.Argument(help="the run's id")], yes: YesFlag = False) -> None:
    """Confirm a draft: post its commission, fee and payout to the ledger, once; it is immutable after."""
    confirmed(f"confirm statement {run_id} and post its commission, fee and payout to the ledger", yes=yes)

    async def work(rt: Runtime) -> settlement.Confirmed:
        async with rt.db.transaction() as session:
            return await settlement.confirm(rt.db, session, run_id, actor=ACTOR)

    done = run(work)
    _print_run(done.run)
    console.print("posted to the ledger" if done.posted else "confirmed already: nothing posted", highlight=False)


@settlement_app.command("list")
def list_runs(
    counterparty: Annotated[str | None, typer.Option("--counterparty")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Runs, newest first."""

    async def work(rt: Runtime) -> list[settlement.SettlementRun]:
        async with rt.db.read() as session:
            return await settlement.list_runs(session, counterparty=counterparty, limit=limit)

    runs = run(work)
    if as_json:
        emit_json(
            [
                {
                    "id": found.id,
                    "counterparty": found.counterparty,
                    "first_day": str(found.first_day),
                    "last_day": str(found.last_day),
                    "status": found.status,
                    "closing": money_json(int(found.figures["closing"]), found.currency),
                }
                for found in runs
            ]
        )
        return
    listed = table("id", "counterparty", "period", "status", "closing")
    for found in runs:
        closing = settlement.money(int(found.figures["closing"]), found.currency)
        listed.add_row(str(found.id), found.counterparty, f"{found.first_day}..{found.last_day}", found.status, closing)
    show(listed)


@settlement_app.command("export")
def export(
    run_id: Annotated[int, typer.Argument(help="the run's id")],
    out: Annotated[Path, typer.Option("--out", help="the file to write")],
    fmt: Annotated[str, typer.Option("--format", help="csv, xlsx or pdf")] = "csv",
) -> None:
    """Write a statement as CSV (UTF-8 with BOM), XLSX or PDF."""

    async def work(rt: Runtime) -> settlement.StatementFile:
        async with rt.db.read() as session:
            return await settlement.statement_file(session, await settlement.get_run(session, run_id), fmt)

    found = run(work)
    out.write_bytes(found.content)
    console.print(f"wrote {out} ({len(found.content)} bytes)", highlight=False)


@settlement_app.command("check")
def check() -> None:
    """Every confirmed statement against its lines, the ledger and the orders; exit 1 naming each problem."""

    async def work(rt: Runtime) -> settlement.SettlementCheck:
        async with rt.db.read() as session:
            return await settlement.check(session)

    result = run(work)
    for problem in result.problems:
        errors.print(f"  {problem}", highlight=False, markup=False)
    if not result.ok:
        raise SystemExit(1)
    console.print(
        f"settlement agrees with the ledger and orders: {result.runs} confirmed statement(s)", highlight=False
    )
