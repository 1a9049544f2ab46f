"""A statement computed from the ledger: its arithmetic, commission tiers, cycles in Asia/Shanghai."""

from tests.support.marketplace import account_balance
from tests.support.settlement import (
    TIERS,
    agent_buys,
    agent_refund,
    at_local,
    confirm,
    given_rule,
    given_selling_agent,
    run,
    settlement_problems,
)

from kaquan import ledger, settlement
from kaquan.runtime import Runtime


async def test_an_agents_month_adds_up_and_confirming_pays_the_commission_into_its_deposit(rt: Runtime) -> None:
    at_local(2026, 10, 20)
    agent, sku = await given_selling_agent(rt, price_minor=300_000, deposit_minor=10_000_000)
    await given_rule(rt, "agent:A001", tiers=TIERS)
    at_local(2026, 11, 3)
    await agent_buys(rt, agent, sku, 3, "N-1")  # ¥9,000.00
    await agent_buys(rt, agent, sku, 2, "N-2")  # ¥6,000.00
    await agent_refund(rt, agent, "N-2")
    await agent_buys(rt, agent, sku, 1, "N-3")  # ¥3,000.00
    at_local(2026, 12, 2)

    draft = await run(rt, "agent:A001", "2026-11-01..2026-11-30")
    figures = settlement.figures_of(draft.figures)

    assert figures.opening == 10_000_000
    assert (figures.sales, figures.refunds) == (-1_800_000, 600_000)
    assert figures.net_settled == 1_200_000  # ¥12,000.00 reaches the 1 % tier
    assert (figures.tier_rate_bp, figures.commission, figures.commissions) == (100, 12_000, 12_000)
    assert figures.closing == 10_000_000 - 1_800_000 + 600_000 + 12_000
    assert await account_balance(rt, "agent:A001") == 10_000_000 - 1_200_000  # nothing posted by a draft

    confirmed = await confirm(rt, draft.id)

    assert confirmed.posted and confirmed.run.status == "confirmed"
    assert await account_balance(rt, "agent:A001") == figures.closing
    assert await account_balance(rt, "commissions:CNY") == 12_000
    assert await settlement_problems(rt) == []
    async with rt.db.read() as session:
        assert (await ledger.check(session)).ok


def test_the_tier_reached_sets_the_rate_of_the_whole_net_sales_rounded_half_up() -> None:
    from kaquan.settlement.rules import share_of, tier_rate

    assert tier_rate(TIERS, 999_999) == 0
    assert tier_rate(TIERS, 1_000_000) == 100
    assert tier_rate(TIERS, 4_999_999) == 100
    assert tier_rate(TIERS, 5_000_000) == 200
    assert share_of(1_000_050, 100) == 10_001  # 10,000.5 fen rounds half up
    assert share_of(1_000_049, 100) == 10_000
    assert share_of(-500, 100) == 0


async def test_an_order_just_before_midnight_local_on_the_last_day_is_in_the_month_and_one_at_midnight_is_not(
    rt: Runtime,
) -> None:
    at_local(2026, 10, 20)
    agent, sku = await given_selling_agent(rt, price_minor=1_000_000)
    await given_rule(rt, "agent:A001", tiers=TIERS)
    # The test clock runs on while the order is placed: a loaded machine once took more than a second, and an
    # order set at 23:59:59 was stamped at midnight. Ten seconds before it leave room for that.
    at_local(2026, 11, 30, 23, 59, 50)
    await agent_buys(rt, agent, sku, 1, "LAST")
    at_local(2026, 12, 1, 0, 0, 0)
    await agent_buys(rt, agent, sku, 1, "NEXT")
    at_local(2026, 12, 3)

    november = settlement.figures_of((await run(rt, "agent:A001", "2026-11-01..2026-11-30")).figures)
    december_1 = settlement.figures_of((await run(rt, "agent:A001", "2026-12-01..2026-12-01")).figures)

    assert (november.sales, november.commission) == (-1_000_000, 10_000)
    assert december_1.sales == -1_000_000
    assert december_1.opening == november.opening - 1_000_000


def test_weekly_periods_run_monday_to_sunday_and_daily_ones_settle_yesterday() -> None:
    from datetime import UTC, date, datetime

    from kaquan.settlement.periods import cycle_period, last_closed_period

    week = cycle_period("weekly", date(2026, 11, 29), "Asia/Shanghai")  # a Sunday
    assert (week.first_day, week.last_day) == (date(2026, 11, 23), date(2026, 11, 29))
    assert week.start == datetime(2026, 11, 22, 16, tzinfo=UTC)  # Monday 00:00 in Shanghai
    month = cycle_period("monthly", date(2026, 2, 14), "Asia/Shanghai")
    assert (month.first_day, month.last_day) == (date(2026, 2, 1), date(2026, 2, 28))
    # 00:30 on 2 December in Shanghai is still 1 December in UTC: the daily run settles 1 December.
    yesterday = last_closed_period("daily", datetime(2026, 12, 1, 16, 30, tzinfo=UTC), "Asia/Shanghai")
    assert yesterday.first_day == date(2026, 12, 1)


async def test_a_commission_below_the_minimum_payout_carries_over_to_the_next_period(rt: Runtime) -> None:
    at_local(2026, 9, 20)
    agent, sku = await given_selling_agent(rt, price_minor=1_200_000)
    await given_rule(rt, "agent:A001", tiers=TIERS, minimum_payout_minor=20_000)
    at_local(2026, 10, 10)
    await agent_buys(rt, agent, sku, 1, "OCT")  # ¥12,000 → ¥120 commission, below ¥200
    at_local(2026, 11, 10)
    await agent_buys(rt, agent, sku, 1, "NOV")
    at_local(2026, 12, 2)

    october = await run(rt, "agent:A001", "2026-10-01..2026-10-31")
    await confirm(rt, october.id)
    november = await run(rt, "agent:A001", "2026-11-01..2026-11-30")
    await confirm(rt, november.id)

    first, second = settlement.figures_of(october.figures), settlement.figures_of(november.figures)
    assert (first.commission, first.commission_posted, first.carried_out) == (12_000, 0, 12_000)
    assert (second.carried_in, second.commission_posted, second.carried_out) == (12_000, 24_000, 0)
    assert await account_balance(rt, "commissions:CNY") == 24_000
    assert second.opening == first.closing
    assert await settlement_problems(rt) == []


async def test_sales_younger_than_the_hold_at_period_end_wait_for_the_next_run(rt: Runtime) -> None:
    at_local(2026, 9, 20)
    agent, sku = await given_selling_agent(rt, price_minor=1_000_000)
    await given_rule(rt, "agent:A001", tiers=TIERS, hold_days=3)
    at_local(2026, 10, 28, 23, 59, 59)
    await agent_buys(rt, agent, sku, 1, "OLD")  # three days and a second old at the period's end: settled
    at_local(2026, 10, 29, 0, 0, 1)
    await agent_buys(rt, agent, sku, 1, "YOUNG")  # younger than three days: held back
    at_local(2026, 11, 5)
    await agent_buys(rt, agent, sku, 1, "NOV")
    at_local(2026, 12, 2)

    october = await run(rt, "agent:A001", "2026-10-01..2026-10-31")
    await confirm(rt, october.id)
    november = await run(rt, "agent:A001", "2026-11-01..2026-11-30")

    first, second = settlement.figures_of(october.figures), settlement.figures_of(november.figures)
    assert (first.sales, first.settled_sales, first.held_sales) == (-2_000_000, 1_000_000, 1_000_000)
    assert first.commission == 10_000
    assert (second.sales, second.settled_sales) == (-1_000_000, 2_000_000)  # November's own, and October's held
    assert second.commission == 20_000


async def test_the_worker_drafts_yesterdays_statement_of_a_daily_cycle_once(rt: Runtime) -> None:
    at_local(2026, 11, 1)
    agent, sku = await given_selling_agent(rt, price_minor=1_000)
    await given_rule(rt, "agent:A001", cycle="daily")
    at_local(2026, 11, 9, 23, 59, 59)
    await agent_buys(rt, agent, sku, 1, "N-1")
    at_local(2026, 11, 10, 0, 5)

    made = await settlement.run_due(rt.db)
    again = await settlement.run_due(rt.db)

    async with rt.db.read() as session:
        drafts = await settlement.list_runs(session, counterparty="agent:A001")
    assert (made, again) == (1, 0)
    assert [(d.status, str(d.first_day), str(d.last_day)) for d in drafts] == [("draft", "2026-11-09", "2026-11-09")]
    assert settlement.figures_of(drafts[0].figures).sales == -1_000
