"""Settlement in tests: the clock at a local time, rules, agent sales at that time, runs and confirmations."""

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tests.support.agents import GivenAgent, given_agent, given_price
from tests.support.builders import GivenSku, given_sku_with_codes

from kaquan import settlement
from kaquan.channels import agents
from kaquan.channels.agents import ordering, refunds
from kaquan.inventory import Viewer
from kaquan.kit import clock
from kaquan.runtime import Runtime

SHANGHAI = ZoneInfo("Asia/Shanghai")
TEN_THOUSAND_YUAN = 1_000_000
TIERS = (settlement.Tier(TEN_THOUSAND_YUAN, 100), settlement.Tier(5_000_000, 200))


def at_local(year: int, month: int, day: int, hour: int = 12, minute: int = 0, second: int = 0) -> None:
    """Set the clock to this wall-clock time in Asia/Shanghai."""
    target = datetime(year, month, day, hour, minute, second, tzinfo=SHANGHAI)
    clock.reset()
    clock.travel((target - clock.now()).total_seconds())


async def given_rule(rt: Runtime, counterparty: str, **terms: Any) -> settlement.SettlementRule:
    rule = settlement.RuleInput(**{"effective_from": date(2026, 1, 1), **terms})
    async with rt.db.transaction() as session:
        return await settlement.set_rule(rt.db, session, counterparty, rule, actor="test")


async def given_selling_agent(
    rt: Runtime, *, code: str = "A001", deposit_minor: int = 100_000_000, price_minor: int = 100, stock: int = 20
) -> tuple[GivenAgent, GivenSku]:
    """An agent with a deposit and a SKU at `price_minor` each (stock `stock` codes)."""
    sku = await given_sku_with_codes(rt, stock)
    await given_price(rt, sku.code, price_minor)
    return await given_agent(rt, code=code, deposit_minor=deposit_minor), sku


async def agent_buys(rt: Runtime, agent: GivenAgent, sku: GivenSku, quantity: int, out_order_no: str) -> str:
    """The agent buys now (at the clock's time); returns the order number."""
    async with rt.db.read() as session:
        found = await agents.get_agent(session, agent.id)
    viewer = Viewer(f"agent:{agent.code}", "test", "127.0.0.1")
    placed = await rt.agent_orders.place(found, ordering.AgentOrderRequest(out_order_no, sku.code, quantity), viewer)
    assert placed.order.status == "delivered"
    return placed.order.number


async def agent_refund(rt: Runtime, agent: GivenAgent, out_order_no: str) -> None:
    async with rt.db.transaction() as session:
        await refunds.refund_delivered(
            rt.db, session, agent_id=agent.id, out_order_no=out_order_no, reason="bad code", actor="test"
        )


async def run(rt: Runtime, counterparty: str, period: str) -> settlement.SettlementRun:
    async with rt.db.transaction() as session:
        return await settlement.create_run(rt.db, session, counterparty, period, actor="test")


async def confirm(rt: Runtime, run_id: int) -> settlement.Confirmed:
    async with rt.db.transaction() as session:
        return await settlement.confirm(rt.db, session, run_id, actor="test")


async def settlement_problems(rt: Runtime) -> list[str]:
    async with rt.db.read() as session:
        return (await settlement.check(session)).problems
