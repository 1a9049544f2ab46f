"""One batch of admitted purchases, one transaction: the database has the last word.

The gate only filters; `commit_batch` re-checks everything under the event's row
lock, so batches of one event from any number of processes commit one at a time.
"""

import asyncio

from sqlalchemy import func, select
from tests.support.builders import given_sku_with_codes, stock_of
from tests.support.flash import given_event, held_by_event
from tests.support.races import each_reads_before_any_writes

from kaquan.flashsale import service
from kaquan.flashsale.committer import Admitted, BatchResult, commit_batch
from kaquan.flashsale.models import Purchase
from kaquan.runtime import Runtime


def item(event_id: int, buyer: str, key: str, quantity: int = 1) -> Admitted:
    return Admitted(event_id, buyer, key, quantity, "shop")


async def commit(rt: Runtime, event_id: int, items: list[Admitted]) -> BatchResult:
    async with rt.db.transaction() as session:
        return await commit_batch(rt.db, session, rt.dev_gateway, event_id, items, hold_minutes=15)


async def test_one_batch_answers_every_purchase_in_order(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=3, limit=2)
    batch = [
        item(event_id, "ann", "k1"),
        item(event_id, "ann", "k2"),
        item(event_id, "ann", "k3"),  # over ann's limit of 2
        item(event_id, "bob", "k4", 2),  # 2 wanted, 1 left
        item(event_id, "dan", "k5"),  # takes the last one
        item(event_id, "ann", "k1"),  # the first request again, in the same batch
    ]

    result = await commit(rt, event_id, batch)

    outcomes = [answer.outcome for answer in result.results]
    assert outcomes == ["won", "won", "limit_reached", "sold_out", "won", "replayed"]
    assert result.results[5].order_number == result.results[0].order_number
    assert result.held_left == 0
    assert await held_by_event(rt, event_id) == 0
    assert (await stock_of(rt, sku)).adds_up


async def test_a_request_committed_earlier_is_answered_with_its_order_again(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5, limit=3)
    first = await commit(rt, event_id, [item(event_id, "ann", "k1")])

    again = await commit(rt, event_id, [item(event_id, "ann", "k1"), item(event_id, "ann", "k1", 2)])

    [won] = first.results
    replayed, conflict = again.results
    assert (won.outcome, replayed.outcome, conflict.outcome) == ("won", "replayed", "conflict")
    assert (replayed.order_number, replayed.payment_token) == (won.order_number, won.payment_token)
    assert again.held_left == 4


async def test_an_ended_event_commits_nothing(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 10)
    event_id = await given_event(rt, sku, stock=5)
    async with rt.db.transaction() as session:
        await service.end_event(rt.db, session, event_id, actor="ops")

    result = await commit(rt, event_id, [item(event_id, "ann", "k1")])

    assert [answer.outcome for answer in result.results] == ["closed"]
    assert result.held_left is None
    assert (await stock_of(rt, sku)).available == 10


async def _race_one_buyer(rt: Runtime, event_id: int, attempts: int) -> list[str]:
    """`attempts` batches at once, each one purchase by the same buyer under a new key."""

    async def one(n: int) -> str:
        try:
            return (await commit(rt, event_id, [item(event_id, "bot", f"k{n}")])).results[0].outcome
        except Exception as exc:
            return type(exc).__name__

    return await asyncio.gather(*(one(n) for n in range(attempts)))


async def _units_won_by_bot(rt: Runtime, event_id: int) -> int:
    async with rt.db.read() as session:
        stmt = select(func.coalesce(func.sum(Purchase.quantity), 0)).where(
            Purchase.event_id == event_id, Purchase.buyer == "bot"
        )
        return int((await session.execute(stmt)).scalar_one())


async def test_concurrent_batches_hold_the_per_buyer_limit(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 30)
    event_id = await given_event(rt, sku, stock=30, limit=1)

    outcomes = await _race_one_buyer(rt, event_id, 12)

    assert sorted(outcomes) == ["limit_reached"] * 11 + ["won"]
    assert await _units_won_by_bot(rt, event_id) == 1


async def test_without_the_event_lock_the_limit_race_is_real(rt: Runtime) -> None:
    """The control experiment: with row locks and IMMEDIATE transactions off, the limit check races.

    Every batch reads the buyer's units won before any batch goes on to write (a barrier after the read),
    so the race is certain: left to the scheduler, the 12 batches once ran one after the other in CI.
    """
    sku = await given_sku_with_codes(rt, 30)
    event_id = await given_event(rt, sku, stock=30, limit=1)
    attempts = 12

    with rt.db.unprotected(), each_reads_before_any_writes(service, "units_won", attempts):
        outcomes = await _race_one_buyer(rt, event_id, attempts)

    over_the_limit = await _units_won_by_bot(rt, event_id) > 1
    lost_to_errors = any(o not in ("won", "limit_reached") for o in outcomes)
    assert over_the_limit or lost_to_errors, outcomes
