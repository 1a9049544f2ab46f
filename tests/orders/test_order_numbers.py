"""Order numbers are random and unique: a number drawn twice is drawn again, never a failed order."""

import hashlib
from collections.abc import Iterator

import pytest
from tests.support.builders import given_sku_with_codes
from tests.support.orders import place

from kaquan.catalog import service as catalog
from kaquan.orders import batch_placing
from kaquan.orders import service as orders
from kaquan.runtime import Runtime


def _draws(monkeypatch: pytest.MonkeyPatch, module: object, numbers: list[str]) -> None:
    """Make `module.new_number` hand out `numbers` first, then fresh random ones."""
    queue: Iterator[str] = iter(numbers)
    fresh = orders.new_number
    monkeypatch.setattr(module, "new_number", lambda: next(queue, None) or fresh())


async def test_a_single_order_whose_number_is_taken_gets_another_one(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku = await given_sku_with_codes(rt, 3)
    first = await place(rt, sku)
    _draws(monkeypatch, orders, [first.order.number, first.order.number])

    second = await place(rt, sku)

    assert second.order.number != first.order.number
    assert not second.replayed and second.order.quantity == 1


async def test_a_batch_order_whose_number_is_taken_gets_another_one_and_the_rest_keep_theirs(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku = await given_sku_with_codes(rt, 5)
    first = await place(rt, sku)
    _draws(monkeypatch, batch_placing, ["261125" + "1" * 10, first.order.number])
    wanted = [batch_placing.BulkOrder(key, 1, hashlib.sha256(key.encode()).digest()) for key in ("k-1", "k-2")]

    async with rt.db.transaction() as session:
        placed = await batch_placing.place_many(
            rt.db,
            session,
            await catalog.get_sku(session, sku.code),
            wanted,
            channel="api",
            source="7",
            unit_price_minor=100,
            currency="CNY",
            status="delivered",
        )

    assert [p.outcome for p in placed] == ["placed", "placed"]
    assert placed[0].number == "261125" + "1" * 10
    assert placed[1].number not in (first.order.number, placed[0].number)
    assert len({code for p in placed for code in p.code_ids}) == 2
