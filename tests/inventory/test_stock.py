"""`inventory.stock.units_held`: the units each holder holds, codes and serials alike."""

import pytest
from tests.support.builders import given_segment_sku, given_sku_with_codes, place_order

from kaquan.inventory.levels import units_held
from kaquan.orders import service as orders
from kaquan.runtime import Runtime


async def holder_of(rt: Runtime, number: str) -> int:
    async with rt.db.read() as session:
        return (await orders.by_number(session, number)).id


@pytest.mark.parametrize("chunk", [1, 30_000])
async def test_units_held_counts_codes_and_serials_per_holder_and_leaves_out_a_holder_with_none(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    codes = await given_sku_with_codes(rt, 5)
    serials = await given_segment_sku(rt, start=1, end=1_000)
    with_codes = await holder_of(rt, (await place_order(rt, codes, 3))[0])
    with_serials = await holder_of(rt, (await place_order(rt, serials, 250))[0])
    monkeypatch.setattr(type(rt.db), "chunk_size", lambda _: chunk)  # one holder per IN list, or all in one

    async with rt.db.read() as session:
        held = await units_held(rt.db, session, [with_codes, with_serials, with_serials, 999_999])

    assert held == {with_codes: 3, with_serials: 250}
