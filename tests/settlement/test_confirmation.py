"""Confirming a statement: posted once even when two confirm at once, immutable, overlaps refused, checked."""

import asyncio
from collections.abc import Iterable

import pytest
from sqlalchemy import update
from tests.support.marketplace import account_balance, given_store_selling, import_file, order_file
from tests.support.races import each_reads_before_any_writes
from tests.support.settlement import (
    TIERS,
    agent_buys,
    at_local,
    confirm,
    given_rule,
    given_selling_agent,
    run,
    settlement_problems,
)

from kaquan import ledger, settlement
from kaquan.channels.marketplace import refunds as marketplace_refunds
from kaquan.runtime import Runtime
from kaquan.settlement import runs
from kaquan.settlement.models import SettlementRun


async def _november_of_an_agent(rt: Runtime) -> settlement.SettlementRun:
    at_local(2026, 10, 20)
    agent, sku = await given_selling_agent(rt, price_minor=1_000_000)
    await given_rule(rt, "agent:A001", tiers=TIERS)
    at_local(2026, 11, 10)
    await agent_buys(rt, agent, sku, 2, "N-1")
    at_local(2026, 12, 2)
    return await run(rt, "agent:A001", "2026-11-01..2026-11-30")


async def _commission_transfers(rt: Runtime) -> list[ledger.PostedTransfer]:
    async with rt.db.read() as session:
        return await ledger.posted_of_kinds(session, ["settlement_commission"])


def _answers(outcomes: Iterable[settlement.Confirmed | BaseException]) -> list[str]:
    return sorted(
        ("posted" if o.posted else "already") if isinstance(o, settlement.Confirmed) else type(o).__name__
        for o in outcomes
    )


async def test_without_the_counterparty_lock_two_confirmations_both_go_ahead(rt: Runtime) -> None:
    """The control experiment: unlocked, both confirmations pass the draft check; the ledger's unique
    reference still posts once.

    The race is certain: each confirmation, once it has read the run, the confirmed periods and the
    statement's figures, waits for the other to have read them too before it posts anything (a rendezvous of
    the two right after `_compute`, its last read). Left to the scheduler, the second could find the run
    confirmed already, or the first's period confirmed by then. PostgreSQL then posts and confirms twice
    over one ledger transfer; on SQLite the second fails on the write lock it takes too late.
    """
    draft = await _november_of_an_agent(rt)

    with rt.db.unprotected(), each_reads_before_any_writes(runs, "_compute", contenders=2):
        outcomes = await asyncio.gather(confirm(rt, draft.id), confirm(rt, draft.id), return_exceptions=True)

    assert _answers(outcomes) == (["posted", "posted"] if rt.db.is_postgresql else ["Busy", "posted"])
    assert len(await _commission_transfers(rt)) == 1


async def test_two_confirmations_at_once_post_the_commission_exactly_once(rt: Runtime) -> None:
    draft = await _november_of_an_agent(rt)

    outcomes = await asyncio.gather(confirm(rt, draft.id), confirm(rt, draft.id), return_exceptions=True)

    assert _answers(outcomes) == ["already", "posted"]
    posted = await _commission_transfers(rt)
    assert [t.reference for t in posted] == [f"settlement:{draft.id}:commission"]
    assert await account_balance(rt, "commissions:CNY") == 20_000


async def test_a_confirmed_statement_is_answered_as_it_is_and_an_overlapping_run_is_refused(rt: Runtime) -> None:
    draft = await _november_of_an_agent(rt)
    first = await confirm(rt, draft.id)

    again = await confirm(rt, draft.id)

    assert (first.posted, again.posted) == (True, False)
    assert again.run.figures == first.run.figures
    with pytest.raises(settlement.PeriodOverlaps):
        await run(rt, "agent:A001", "2026-11-30..2026-12-01")
    assert len(await _commission_transfers(rt)) == 1


async def test_a_draft_made_before_an_earlier_period_was_confirmed_is_stale(rt: Runtime) -> None:
    at_local(2026, 10, 20)
    agent, sku = await given_selling_agent(rt, price_minor=1_000_000)
    await given_rule(rt, "agent:A001", tiers=TIERS, hold_days=3)
    at_local(2026, 10, 30)
    await agent_buys(rt, agent, sku, 1, "HELD")  # held back by October's run, settled by November's
    at_local(2026, 12, 2)
    november = await run(rt, "agent:A001", "2026-11-01..2026-11-30")
    october = await run(rt, "agent:A001", "2026-10-01..2026-10-31")
    await confirm(rt, october.id)

    with pytest.raises(settlement.StaleDraft):
        await confirm(rt, november.id)

    again = await run(rt, "agent:A001", "2026-11-01..2026-11-30")
    assert settlement.figures_of(again.figures).settled_sales == 1_000_000
    assert (await confirm(rt, again.id)).posted


async def test_the_check_names_a_tampered_figure(rt: Runtime) -> None:
    draft = await _november_of_an_agent(rt)
    await confirm(rt, draft.id)
    assert await settlement_problems(rt) == []

    async with rt.db.transaction() as session:
        tampered = {**draft.figures, "sales": draft.figures["sales"] + 1, "closing": draft.figures["closing"] + 1}
        await session.execute(update(SettlementRun).where(SettlementRun.id == draft.id).values(figures=tampered))

    problems = await settlement_problems(rt)
    assert any(f"settlement run {draft.id}" in p and "sales is" in p for p in problems)
    assert any("closing balance" in p and "the ledger says" in p for p in problems)


async def test_the_check_names_a_statement_marked_confirmed_whose_commission_was_never_posted(rt: Runtime) -> None:
    draft = await _november_of_an_agent(rt)

    async with rt.db.transaction() as session:
        await session.execute(update(SettlementRun).where(SettlementRun.id == draft.id).values(status="confirmed"))

    named = f"settlement run {draft.id} (agent:A001 2026-11-01..2026-11-30)"
    expected = f"{named}: settlement:{draft.id}:commission is posted for ¥0.00, the statement says ¥200.00"
    assert expected in await settlement_problems(rt)


async def test_a_marketplace_store_pays_out_its_settled_receivable_net_of_its_fee_and_refunds(rt: Runtime) -> None:
    at_local(2026, 10, 20)
    await given_store_selling(rt, ["C1", "C2", "C3"], price_minor=10_000, fee_rate_bp=500)
    await given_rule(rt, "marketplace:tmall", minimum_payout_minor=1)
    at_local(2026, 11, 10)
    sku_code = await _store_sku(rt)
    delivered = await import_file(rt, order_file(f"TM-1,{sku_code},2", f"TM-2,{sku_code},1"))
    at_local(2026, 11, 12)
    async with rt.db.transaction() as session:
        order_id = delivered[1].order_id
        assert order_id is not None
        await marketplace_refunds.refund_order(rt.db, session, order_id, reason="buyer", actor="test")
    at_local(2026, 12, 2)

    draft = await run(rt, "marketplace:tmall", "2026-11-01..2026-11-30")
    figures = settlement.figures_of(draft.figures)
    assert (figures.sales, figures.refunds, figures.fees) == (30_000, -10_000, -1_500 + 500)
    assert figures.net_settled == 20_000
    assert figures.payable == 30_000 - 1_500 - (10_000 - 500)
    await confirm(rt, draft.id)

    assert await account_balance(rt, "receivable:marketplace:tmall:CNY") == 0
    assert await account_balance(rt, "bank:CNY") == 19_000
    assert figures.closing == 0
    assert await settlement_problems(rt) == []


async def _store_sku(rt: Runtime) -> str:
    from kaquan.catalog import service as catalog

    async with rt.db.read() as session:
        return (await catalog.list_skus(session))[-1].code
