"""Agents buy through the signed open API from a prepaid balance: paid in the transaction that allocates."""

import asyncio

import pytest
from tests.support.agents import GivenAgent, agent_client, given_agent, given_price
from tests.support.builders import given_segment_sku, given_sku_with_codes, stock_of

from kaquan import ledger
from kaquan.channels.agents import accounts as agents
from kaquan.channels.agents.ordering import AgentOrder, AgentOrderRequest, AgentOrders
from kaquan.client import ApiError, NewOrder, Order
from kaquan.inventory.delivery import Viewer
from kaquan.kit import outbox
from kaquan.kit.errors import DomainError
from kaquan.runtime import Runtime


async def _balance(rt: Runtime, agent: GivenAgent) -> int:
    async with rt.db.read() as session:
        return (await ledger.balance(session, (await agents.get_agent(session, agent.id)).account_id)).balance_minor


async def test_a_sync_order_is_delivered_with_codes_and_debits_the_balance(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 5)
    await given_price(rt, sku.code, 800)
    agent = await given_agent(rt, deposit_minor=10_000)

    async with agent_client(rt, agent) as kq:
        order = await kq.place_order("A-1", sku.code, 2)

    assert (order.status, order.quantity, order.total_minor) == ("delivered", 2, 1600)
    assert len({code.secret for code in order.codes}) == 2
    assert await _balance(rt, agent) == 10_000 - 1600
    stock = await stock_of(rt, sku)
    assert (stock.sold, stock.available, stock.adds_up) == (2, 3, True)
    async with rt.db.read() as session:
        assert (await ledger.check(session)).ok


async def test_the_same_out_order_no_and_body_returns_the_same_order_and_charges_once(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 5)
    await given_price(rt, sku.code, 500)
    agent = await given_agent(rt, deposit_minor=10_000)

    async with agent_client(rt, agent) as kq:
        first = await kq.place_order("A-1", sku.code, 1)
        again = await kq.place_order("A-1", sku.code, 1)
        with pytest.raises(ApiError) as conflict:
            await kq.place_order("A-1", sku.code, 2)

    assert again.order_no == first.order_no
    assert [c.secret for c in again.codes] == [c.secret for c in first.codes]
    assert (conflict.value.status, conflict.value.code) == (409, "idempotency_conflict")
    assert await _balance(rt, agent) == 10_000 - 500
    assert (await stock_of(rt, sku)).sold == 1


async def test_another_agent_reusing_an_out_order_no_gets_its_own_order_and_learns_nothing(rt: Runtime) -> None:
    """Issue 10's replay attack, tried on the open API: out_order_no is scoped per agent already."""
    sku = await given_sku_with_codes(rt, 5)
    await given_price(rt, sku.code, 500)
    acme = await given_agent(rt, code="acme", deposit_minor=10_000)
    rival = await given_agent(rt, code="rival", deposit_minor=10_000)
    async with agent_client(rt, acme) as kq:
        theirs = await kq.place_order("A-1", sku.code, 1)
        await kq.place_order("A-2", sku.code, 1)

    async with agent_client(rt, rival) as kq:
        with pytest.raises(ApiError) as not_theirs:
            await kq.order("A-1")
        same_body = await kq.place_order("A-1", sku.code, 1)
        other_body = await kq.place_order("A-2", sku.code, 2)

    assert (not_theirs.value.status, not_theirs.value.code) == (404, "order_not_found")
    assert same_body.order_no != theirs.order_no
    assert not {c.secret for c in same_body.codes} & {c.secret for c in theirs.codes}
    assert (other_body.status, other_body.quantity) == ("delivered", 2)  # not a 409 telling A-2 is taken
    assert (await _balance(rt, acme), await _balance(rt, rival)) == (10_000 - 1000, 10_000 - 1500)


async def test_an_order_the_balance_cannot_cover_is_refused_whole_and_changes_nothing(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 5)
    await given_price(rt, sku.code, 1000)
    agent = await given_agent(rt, deposit_minor=2500)

    async with agent_client(rt, agent) as kq:
        with pytest.raises(ApiError) as refused:
            await kq.place_order("A-1", sku.code, 3)
        partial = await kq.place_order("A-2", sku.code, 3, allow_partial=True)

    assert (refused.value.status, refused.value.code) == (402, "insufficient_balance")
    assert (partial.status, partial.quantity, partial.requested_quantity) == ("delivered", 2, 3)
    assert await _balance(rt, agent) == 500
    assert (await stock_of(rt, sku)).sold == 2


async def test_the_credit_limit_lets_the_balance_go_negative_down_to_minus_the_limit(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 10)
    await given_price(rt, sku.code, 1000)
    agent = await given_agent(rt, deposit_minor=1000, credit_limit_minor=2000)

    async with agent_client(rt, agent) as kq:
        await kq.place_order("A-1", sku.code, 3)
        with pytest.raises(ApiError) as refused:
            await kq.place_order("A-2", sku.code, 1)
        balance = await kq.balance()

    assert refused.value.code == "insufficient_balance"
    assert (balance.balance_minor, balance.credit_limit_minor, balance.available_minor) == (-2000, 2000, 0)


async def test_short_stock_refuses_whole_unless_partial_is_asked_for(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 2)
    await given_price(rt, sku.code, 100)
    agent = await given_agent(rt)

    async with agent_client(rt, agent) as kq:
        with pytest.raises(ApiError) as refused:
            await kq.place_order("A-1", sku.code, 3)
        partial = await kq.place_order("A-2", sku.code, 3, allow_partial=True)

    assert (refused.value.status, refused.value.code) == (409, "out_of_stock")
    assert (partial.quantity, partial.total_minor) == (2, 200)
    assert await _balance(rt, agent) == 100_000 - 200


async def test_a_sku_off_the_agents_price_list_is_not_for_sale_to_it(rt: Runtime) -> None:
    listed = await given_sku_with_codes(rt, 2)
    unlisted = await given_sku_with_codes(rt, 2)
    await given_price(rt, listed.code, 100)
    agent = await given_agent(rt)

    async with agent_client(rt, agent) as kq:
        products = await kq.products()
        with pytest.raises(ApiError) as refused:
            await kq.place_order("A-1", unlisted.code, 1)

    assert [p.sku for p in products] == [listed.code]
    assert (refused.value.status, refused.value.code) == (404, "sku_not_available_for_agent")


async def test_an_agent_tier_gets_its_own_price(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 4)
    await given_price(rt, sku.code, 1000)
    await given_price(rt, sku.code, 900, tier="gold")
    gold = await given_agent(rt, code="gold", tier="gold")
    plain = await given_agent(rt, code="plain")

    async with agent_client(rt, gold) as kq:
        gold_order = await kq.place_order("G-1", sku.code, 1)
    async with agent_client(rt, plain) as kq:
        plain_order = await kq.place_order("P-1", sku.code, 1)

    assert (gold_order.unit_price_minor, plain_order.unit_price_minor) == (900, 1000)


@pytest.mark.parametrize("quantity", [0, -1, 10**9])
async def test_a_quantity_out_of_range_is_refused(rt: Runtime, quantity: int) -> None:
    sku = await given_sku_with_codes(rt, 2)
    await given_price(rt, sku.code, 100)
    agent = await given_agent(rt)

    async with agent_client(rt, agent) as kq:
        with pytest.raises(ApiError) as refused:
            await kq.place_order("A-1", sku.code, quantity)

    assert refused.value.code == "invalid_quantity"
    assert await _balance(rt, agent) == 100_000


async def test_an_async_order_is_processing_then_filled_by_the_worker(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 3)
    await given_price(rt, sku.code, 100)
    agent = await given_agent(rt)

    async with agent_client(rt, agent) as kq:
        accepted = await kq.place_order("A-1", sku.code, 2, mode="async")
        assert (accepted.status, accepted.codes) == ("processing", ())
        assert await _balance(rt, agent) == 100_000 - 200
        await outbox.run_due(rt.db)
        filled = await kq.order("A-1")

    assert filled.status == "delivered"
    assert len(filled.codes) == 2


async def test_an_async_order_that_finds_no_stock_is_refunded_to_the_balance(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 2)
    await given_price(rt, sku.code, 100)
    agent = await given_agent(rt)

    async with agent_client(rt, agent) as kq:
        await kq.place_order("A-1", sku.code, 2, mode="async")
        await kq.place_order("A-2", sku.code, 2, mode="async")
        await outbox.run_due(rt.db)
        first, second = await kq.order("A-1"), await kq.order("A-2")

    assert {first.status, second.status} == {"delivered", "refunded"}
    assert await _balance(rt, agent) == 100_000 - 200
    async with rt.db.read() as session:
        assert (await ledger.check(session)).ok


async def test_a_free_sku_is_delivered_without_moving_money_and_spoils_no_other_order(rt: Runtime) -> None:
    free = await given_sku_with_codes(rt, 2)
    paid = await given_sku_with_codes(rt, 2)
    await given_price(rt, free.code, 0)
    await given_price(rt, paid.code, 300)
    agent = await given_agent(rt, deposit_minor=1000)

    async with agent_client(rt, agent) as kq:
        gift, bought = await kq.place_orders([NewOrder("A-1", free.code, 2), NewOrder("A-2", paid.code, 1)])

    assert isinstance(gift, Order) and (gift.status, gift.total_minor, len(gift.codes)) == ("delivered", 0, 2)
    assert isinstance(bought, Order) and bought.status == "delivered"
    assert await _balance(rt, agent) == 1000 - 300
    async with rt.db.read() as session:
        assert (await ledger.check(session)).ok


async def test_a_free_async_order_that_finds_no_stock_is_refunded_without_moving_money(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 1)
    await given_price(rt, sku.code, 0)
    agent = await given_agent(rt, deposit_minor=1000)

    async with agent_client(rt, agent) as kq:
        await kq.place_order("A-1", sku.code, 1, mode="async")
        await kq.place_order("A-2", sku.code, 1, mode="async")
        await outbox.run_due(rt.db)
        first, second = await kq.order("A-1"), await kq.order("A-2")

    assert {first.status, second.status} == {"delivered", "refunded"}
    assert await _balance(rt, agent) == 1000


async def test_concurrent_orders_of_one_agent_are_committed_in_batches_without_overspending(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 60)
    await given_price(rt, sku.code, 100)
    agent = await given_agent(rt, deposit_minor=3000, credit_limit_minor=1000)

    async with agent_client(rt, agent) as kq:
        results = await asyncio.gather(
            *(kq.place_order(f"A-{n}", sku.code, 1) for n in range(60)), return_exceptions=True
        )

    won = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(won) == 40
    assert {r.code for r in refused} == {"insufficient_balance"} and len(refused) == 20
    assert len({code.secret for order in won for code in order.codes}) == 40
    assert await _balance(rt, agent) == -1000
    assert (await stock_of(rt, sku)).adds_up


async def test_a_batch_request_answers_each_order_on_its_own(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 3)
    await given_price(rt, sku.code, 100)
    agent = await given_agent(rt)

    async with agent_client(rt, agent) as kq:
        first = await kq.place_order("A-0", sku.code, 1)
        results = await kq.place_orders(
            [
                NewOrder("A-0", sku.code, 1),  # a retry of the order above
                NewOrder("A-1", sku.code, 2),
                NewOrder("A-2", sku.code, 1),  # no stock left for it
                NewOrder("A-3", "NO-SUCH-SKU", 1),
            ]
        )

    retry, placed, short, unknown = results
    assert isinstance(retry, Order) and retry.order_no == first.order_no
    assert isinstance(placed, Order) and len(placed.codes) == 2
    assert isinstance(short, ApiError) and (short.status, short.code) == (409, "out_of_stock")
    assert isinstance(unknown, ApiError) and unknown.code == "sku_not_available_for_agent"
    assert await _balance(rt, agent) == 100_000 - 300


async def test_a_serial_range_sku_is_not_sold_through_the_open_api_and_spoils_no_other_order(rt: Runtime) -> None:
    """Segment (号段) SKUs have no batched path: even on the price list they are neither listed nor sold,
    and an order for one is refused on its own, not with the batch it shares."""
    codes = await given_sku_with_codes(rt, 2)
    ranges = await given_segment_sku(rt, start=1, end=100)
    await given_price(rt, codes.code, 100)
    await given_price(rt, ranges.code, 100)
    agent = await given_agent(rt)

    async with agent_client(rt, agent) as kq:
        listed = [product.sku for product in await kq.products()]
        serial, code = await kq.place_orders([NewOrder("A-1", ranges.code, 1), NewOrder("A-2", codes.code, 1)])

    assert listed == [codes.code]
    assert isinstance(serial, ApiError) and (serial.status, serial.code) == (404, "sku_not_available_for_agent")
    assert isinstance(code, Order) and code.status == "delivered" and len(code.codes) == 1
    assert await _balance(rt, agent) == 100_000 - 100
    assert (await stock_of(rt, ranges)).sold == 0


async def test_a_batch_naming_one_out_order_no_twice_is_refused_whole(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 3)
    await given_price(rt, sku.code, 100)
    agent = await given_agent(rt)

    async with agent_client(rt, agent) as kq:
        with pytest.raises(ApiError) as refused:
            await kq.place_orders([NewOrder("A-1", sku.code, 1), NewOrder("A-1", sku.code, 1)])

    assert (refused.value.status, refused.value.code) == (400, "bad_input")
    assert (await stock_of(rt, sku)).sold == 0


async def test_two_server_processes_ordering_for_one_agent_at_once_never_overspend(rt: Runtime) -> None:
    """Two order desks (one per server process) decide their batches on the balance as read; the guarded
    debit at the end catches a balance the other desk spent meanwhile, and that batch is decided again locked."""
    sku = await given_sku_with_codes(rt, 60)
    await given_price(rt, sku.code, 100)
    given = await given_agent(rt, deposit_minor=3000, credit_limit_minor=1000)
    async with rt.db.read() as session:
        agent = await agents.get_agent(session, given.id)
    desks = [AgentOrders(rt.db, rt.vault, max_per_order=10, max_batch=7) for _ in range(2)]
    viewer = Viewer(f"agent:{agent.code}", "api order")

    async def place(n: int) -> AgentOrder | DomainError:
        try:
            return await desks[n % 2].place(agent, AgentOrderRequest(f"A-{n}", sku.code, 1), viewer)
        except DomainError as refused:
            return refused

    try:
        results = await asyncio.gather(*(place(n) for n in range(60)))
    finally:
        for desk in desks:
            await desk.close()

    won = [r for r in results if isinstance(r, AgentOrder)]
    assert len(won) == 40
    assert {r.code for r in results if isinstance(r, DomainError)} == {"insufficient_balance"}
    assert len({code.secret for order in won for code in order.codes}) == 40
    assert await _balance(rt, given) == -1000
    assert (await stock_of(rt, sku)).adds_up
    async with rt.db.read() as session:
        assert (await ledger.check(session)).ok
