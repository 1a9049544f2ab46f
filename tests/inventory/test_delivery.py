"""Every plaintext reveal of a code is recorded: who, when, why (invariant 6)."""

from sqlalchemy import select
from tests.support.builders import given_sku_with_codes, pay, place_order

from kaquan.inventory.delivery import Viewer, codes_of_order, mask
from kaquan.inventory.models import Reveal
from kaquan.orders import service as orders
from kaquan.runtime import Runtime


async def test_opening_an_orders_codes_records_the_reveal(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 3)
    number, _, token = await place_order(rt, sku, 2)
    await pay(rt, token)

    async with rt.db.transaction() as session:
        order = await orders.by_number(session, number)
        codes = await codes_of_order(session, rt.vault, order.id, Viewer("buyer", "order page", "198.51.100.7"))

    assert len(codes) == 2
    async with rt.db.read() as session:
        reveals = list((await session.execute(select(Reveal))).scalars())
    assert [(r.order_id, r.units, r.viewer, r.reason, r.ip) for r in reveals] == [
        (order.id, 2, "buyer", "order page", "198.51.100.7")
    ]


async def test_an_unpaid_order_reveals_nothing_and_records_nothing(rt: Runtime) -> None:
    sku = await given_sku_with_codes(rt, 3)
    number, _, _ = await place_order(rt, sku, 1)

    async with rt.db.transaction() as session:
        order = await orders.by_number(session, number)
        view = await orders.view(session, rt.vault, order, Viewer("buyer", "order page"))

    assert view.codes == []
    async with rt.db.read() as session:
        assert (await session.execute(select(Reveal))).first() is None


def test_a_masked_secret_shows_only_its_last_four_characters() -> None:
    assert mask("ABCDEFGHJKLMNPQR") == "••••••••••••NPQR"
    assert mask("ABC") == "••••••••"
