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
