"""`kaquan ledger …`: The ledger: check that it balances, read an account's entries."""

from typing import Annotated

import typer

from kaquan import accounting, ledger, settlement
from kaquan.cli.common import aware_time, console, errors, run
from kaquan.cli.output import JsonFlag, emit_json, local_time, money, money_json, show, table
from kaquan.ledger import LedgerAccount
from kaquan.ledger.errors import AccountNotFound
from kaquan.payments import refunds as payment_refunds
from kaquan.runtime import Runtime

ledger_app = typer.Typer(help="The ledger: check that it balances, read an account's entries.", no_args_is_help=True)


@ledger_app.command("check")
def check() -> None:
    """Prove the ledger balances and agrees with orders and payments per currency; name each problem, exit 1 if any."""

    async def work(rt: Runtime) -> tuple[ledger.LedgerCheck, list[str], int, int, int, settlement.SettlementCheck]:
        async with rt.db.read() as session:
            paid, refunds = await payment_refunds.books_records(session)
            books = await accounting.check_books(session, paid, refunds)
            waiting = len(await accounting.pending_cost_of_goods(session))
            statements = await settlement.check(session)
            return await ledger.check(session), books, len(paid), len(refunds), waiting, statements

    result, books, paid, refunds, waiting, statements = run(work)
    books = books + statements.problems
    if not result.ok:
        errors.print(f"[bold red]ledger out of balance[/]: {len(result.problems)} problem(s)", highlight=False)
        for problem in result.problems:
            errors.print(f"  {problem}", highlight=False, markup=False)
    if books:
        errors.print(f"[bold red]books disagree with orders and payments[/]: {len(books)} problem(s)", highlight=False)
        for problem in books:
            errors.print(f"  {problem}", highlight=False, markup=False)
    if not result.ok or books:
        raise SystemExit(1)
    console.print(f"ledger balanced: {result.transfers} transfers, {result.postings} postings", highlight=False)
    console.print(f"books agree with orders and payments: {paid} payment(s), {refunds} refund(s)", highlight=False)
    console.print(f"settlement statements agree with the ledger: {statements.runs} confirmed", highlight=False)
    if waiting:
        console.print(f"cost of goods of {waiting} order(s) waits for the worker (the outbox)", highlight=False)


@ledger_app.command("entries")
def entries(
    account: Annotated[str, typer.Argument(help="the account code, e.g. agent:42 or shop:sales:CNY")],
    since: Annotated[str | None, typer.Option(help="from this time, ISO 8601 with zone")] = None,
    until: Annotated[str | None, typer.Option(help="before this time, ISO 8601 with zone")] = None,
    limit: Annotated[int, typer.Option(min=1, max=ledger.MAX_PAGE, help="at most this many entries")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """An account's entries, oldest first; amounts in the account's own sign (+ grows its balance)."""
    start, end = aware_time(since, "--since"), aware_time(until, "--until")

    async def work(rt: Runtime) -> tuple[LedgerAccount, ledger.Balance, list[ledger.Entry]]:
        async with rt.db.read() as session:
            found = await ledger.account_by_code(session, account)
            if found is None:
                raise AccountNotFound(f"no ledger account {account!r}", code=account)
            listed = await ledger.entries(session, found.id, since=start, until=end, limit=limit)
            return found, await ledger.balance(session, found.id), listed

    found, current, listed = run(work)
    if as_json:
        emit_json(
            {
                "account": found.code,
                "balance": money_json(current.balance_minor, found.currency),
                "floor": money_json(current.floor_minor, found.currency),
                "entries": [
                    {
                        "posting_id": entry.posting_id,
                        "at": entry.at.isoformat(),
                        "transfer_id": entry.transfer_id,
                        "kind": entry.kind,
                        "reference": entry.reference,
                        "memo": entry.memo,
                        "amount": money_json(entry.amount_minor, found.currency),
                    }
                    for entry in listed
                ],
            }
        )
        return
    rows = table("posting", "at", "transfer", "kind", "reference", "memo", "amount", title=found.code)
    for entry in listed:
        rows.add_row(
            str(entry.posting_id),
            local_time(entry.at),
            str(entry.transfer_id),
            entry.kind,
            entry.reference or "-",
            entry.memo or "-",
            money(entry.amount_minor, found.currency),
        )
    show(rows)
    floor = "no floor" if current.floor_minor is None else f"floor {money(current.floor_minor, found.currency)}"
    console.print(
        f"{len(listed)} entries; balance {money(current.balance_minor, found.currency)} ({floor})",
        highlight=False,
    )
