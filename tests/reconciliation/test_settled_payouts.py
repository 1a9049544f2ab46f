"""One payout, booked once: a store's settlement run and the payout line of its export clear the same money.

The store `tmall` (5 % commission) sells ¥300.00 in November 2026; November's
settlement run pays out ¥285.00, and the store's export for the month has the
payout line P1 of ¥285.00 on 3 December. Whichever is seen first books the
payout (Dr bank, Cr the store's receivable); the other links to it. Either way
the bank holds ¥285.00 once, the receivable is 0, and the checks of
`kaquan ledger check` (the ledger, the books, the settlement statements) pass.
"""

import hashlib
import io
from datetime import date

from tests.support.marketplace import account_balance, given_store_selling, import_file, order_file
from tests.support.settlement import at_local, confirm, given_rule, run

from kaquan import accounting, ledger, reconciliation, settlement
from kaquan.payments import refunds
from kaquan.runtime import Runtime

STORE = "marketplace:tmall"
RECEIVABLE = "receivable:marketplace:tmall:CNY"
EXPORT = (
    "结算流水号,订单号,类型,金额（元）,佣金（元）,发生时间\n"
    "S1,TM-1,订单收入,200.00,10.00,2026-11-10 12:00:00\n"
    "S2,TM-2,订单收入,100.00,5.00,2026-11-10 12:00:00\n"
    "P1,,结算打款,285.00,,2026-12-03 09:00:00\n"
)


async def november_sales(rt: Runtime) -> None:
    at_local(2026, 10, 20)
    sku = await given_store_selling(rt, ["C1", "C2", "C3"], price_minor=10_000, fee_rate_bp=500)
    await given_rule(rt, STORE, minimum_payout_minor=1)
    at_local(2026, 11, 10)
    delivered = await import_file(rt, order_file(f"TM-1,{sku.code},2", f"TM-2,{sku.code},1"))
    assert [line.outcome for line in delivered] == ["placed", "placed"]
    assert await account_balance(rt, RECEIVABLE) == 28_500


async def reconcile_the_export(rt: Runtime) -> reconciliation.DifferenceView:
    """Import the store's export and match November to 3 December; the payout line's item."""
    data = EXPORT.encode()
    async with rt.db.transaction() as session:
        statement, _ = await reconciliation.open_source(session, STORE, io.BytesIO(data))
        await reconciliation.import_statement(
            rt.db, session, statement, sha256=hashlib.sha256(data).hexdigest(), filename="tmall.csv", actor="finance"
        )
        summary = await reconciliation.match_period(
            rt.db, session, source=STORE, first_day=date(2026, 11, 10), last_day=date(2026, 12, 3)
        )
    assert {name: n for name, n in summary.counts.items() if n} == {"matched": 3}
    async with rt.db.read() as session:
        found = await reconciliation.list_differences(session, source=STORE, states=None, limit=100)
    [payout] = [item for item in found if item.line_kind == "payout"]
    assert (payout.class_, payout.expected_minor, payout.found_minor) == ("matched", 28_500, 28_500)
    return payout


async def bank_transfers(rt: Runtime) -> list[ledger.PostedTransfer]:
    """Every transfer that moved money into the bank."""
    async with rt.db.read() as session:
        found = await ledger.posted_of_kinds(session, [accounting.PAYOUT_KIND, accounting.SETTLEMENT_PAYOUT_KIND])
    return [transfer for transfer in found if transfer.moved("bank:CNY")]


async def ledger_check_problems(rt: Runtime) -> list[str]:
    """What `kaquan ledger check` names: the ledger, the books against payments, the settlement statements."""
    async with rt.db.read() as session:
        paid, done = await refunds.books_records(session)
        return (
            (await ledger.check(session)).problems
            + await accounting.check_books(session, paid, done)
            + (await settlement.check(session)).problems
        )


async def test_a_payout_line_matched_after_the_run_was_confirmed_links_to_the_runs_payout(rt: Runtime) -> None:
    await november_sales(rt)
    at_local(2026, 12, 2)
    november = await run(rt, STORE, "2026-11-01..2026-11-30")
    assert (await confirm(rt, november.id)).posted

    at_local(2026, 12, 3, 10)
    payout = await reconcile_the_export(rt)

    assert payout.ledger_reference == f"settlement:{november.id}:payout"
    [moved] = await bank_transfers(rt)
    assert (moved.kind, moved.reference) == ("settlement_payout", f"settlement:{november.id}:payout")
    assert (await account_balance(rt, "bank:CNY"), await account_balance(rt, RECEIVABLE)) == (28_500, 0)
    await reconcile_the_export(rt)  # matched again: still linked, nothing booked
    assert len(await bank_transfers(rt)) == 1
    assert await ledger_check_problems(rt) == []


async def test_a_run_confirmed_after_the_payout_line_was_matched_adopts_the_booked_payout(rt: Runtime) -> None:
    await november_sales(rt)
    at_local(2026, 12, 3, 10)
    payout = await reconcile_the_export(rt)
    assert payout.ledger_reference == "payout:marketplace:tmall:P1"
    assert await account_balance(rt, RECEIVABLE) == 0

    at_local(2026, 12, 4)
    november = await run(rt, STORE, "2026-11-01..2026-11-30")
    figures = settlement.figures_of(november.figures)
    assert (figures.opening, figures.payout_posted, figures.payouts, figures.closing) == (0, 28_500, -28_500, 0)
    confirmed = await confirm(rt, november.id)

    assert confirmed.posted and confirmed.run.payout_reference == "payout:marketplace:tmall:P1"
    [moved] = await bank_transfers(rt)
    assert (moved.kind, moved.reference) == ("payout", "payout:marketplace:tmall:P1")
    assert (await account_balance(rt, "bank:CNY"), await account_balance(rt, RECEIVABLE)) == (28_500, 0)
    assert await ledger_check_problems(rt) == []

    at_local(2027, 1, 2)  # December: the payout booked on 3 December is November's, not a December movement
    december = settlement.figures_of((await run(rt, STORE, "2026-12-01..2026-12-31")).figures)
    assert (december.opening, december.payouts, december.adjustments, december.closing) == (0, 0, 0, 0)
    await reconcile_the_export(rt)  # matched again: the line keeps its booking, the run keeps it adopted
    assert len(await bank_transfers(rt)) == 1
    assert await ledger_check_problems(rt) == []


async def test_the_check_names_a_run_whose_adopted_payout_was_posted_again(rt: Runtime) -> None:
    await november_sales(rt)
    at_local(2026, 12, 3, 10)
    await reconcile_the_export(rt)
    at_local(2026, 12, 4)
    november = (await confirm(rt, (await run(rt, STORE, "2026-11-01..2026-11-30")).id)).run
    async with rt.db.transaction() as session:
        bank = await ledger.account_by_code(session, "bank:CNY")
        owed = await ledger.account_by_code(session, RECEIVABLE)
        assert bank is not None and owed is not None
        await ledger.post(
            rt.db,
            session,
            ledger.TransferSpec(
                kind="settlement_payout",
                legs=(ledger.Leg(bank.id, 28_500), ledger.Leg(owed.id, -28_500)),
                reference=f"settlement:{november.id}:payout",
                memo="posted by hand",
            ),
            actor="test",
        )

    problems = await ledger_check_problems(rt)
    assert any("posted twice" in problem and "payout:marketplace:tmall:P1" in problem for problem in problems)
