"""The proof of issue 4: 50 agents order at once against limited stock and limited balances.

No code is sold twice, no balance goes below minus its credit limit, the ledger
sums to zero, stock adds up, and every order's callback reaches a receiver that
fails at random exactly once per event id.
"""

import asyncio
from collections import Counter

import httpx
from tests.support.agents import GivenAgent, agent_client, given_agent, given_price
from tests.support.builders import given_sku_with_codes, stock_of
from tests.support.callback_receiver import Receiver, seeded
from tests.support.callbacks import given_endpoint, work

from kaquan import ledger
from kaquan.channels.agents import accounts as agents
from kaquan.client import ApiError, Order
from kaquan.runtime import Runtime
from kaquan.web.app import create_app

AGENTS = 50
ORDERS_EACH = 6
STOCK = 120
PRICE = 100
DEPOSIT = 3 * PRICE
CREDIT = 1 * PRICE  # each agent can afford 4 of its 6 orders: 200 affordable against 120 codes


async def _orders_of(
    rt: Runtime, agent: GivenAgent, sku: str, transport: httpx.ASGITransport
) -> list[Order | BaseException]:
    async with agent_client(rt, agent, transport) as kq:
        return await asyncio.gather(
            *(kq.place_order(f"{agent.code}-{n}", sku, 1) for n in range(ORDERS_EACH)), return_exceptions=True
        )


async def test_fifty_agents_at_once_sell_each_code_once_within_every_balance_and_every_callback_arrives_once(
    rt: Runtime,
) -> None:
    sku = await given_sku_with_codes(rt, STOCK)
    await given_price(rt, sku.code, PRICE)
    receiver = Receiver(answer=seeded(4, {"ok": 0.6, "error": 0.25, "reset": 0.15}))
    await receiver.start()
    try:
        crowd = [
            await given_agent(rt, code=f"agent{n}", deposit_minor=DEPOSIT, credit_limit_minor=CREDIT)
            for n in range(AGENTS)
        ]
        for agent in crowd:
            await given_endpoint(rt.db, rt.keyring, receiver, agent.id)

        app = httpx.ASGITransport(app=create_app(rt=rt))
        answers = await asyncio.gather(*(_orders_of(rt, agent, sku.code, app) for agent in crowd))
        results = [result for batch in answers for result in batch]

        won = [r for r in results if isinstance(r, Order)]
        refused = Counter(r.code for r in results if isinstance(r, ApiError))
        assert len(won) + sum(refused.values()) == AGENTS * ORDERS_EACH, "every request got an answer"
        assert set(refused) <= {"out_of_stock", "insufficient_balance"}
        assert len(won) == STOCK, "the codes, not the balances, run out first"
        secrets = [code.secret for order in won for code in order.codes]
        assert len(secrets) == len(set(secrets)) == STOCK, "no code twice"
        stock = await stock_of(rt, sku)
        assert (stock.sold, stock.available, stock.adds_up) == (STOCK, 0, True)
        async with rt.db.read() as session:
            assert (await ledger.check(session)).ok, "every transfer balanced; balances equal their postings"
            for agent in crowd:
                held = await ledger.balance(session, (await agents.get_agent(session, agent.id)).account_id)
                assert held.balance_minor >= -CREDIT

        async with httpx.AsyncClient() as http:
            await work(rt.db, rt.keyring, http)

        assert Counter(receiver.accepted) == Counter({event_id: 1 for event_id in set(receiver.accepted)})
        assert len(receiver.accepted) == len(won), "one callback per order, each accepted exactly once"
        assert receiver.bad_signatures == []
    finally:
        await receiver.stop()
