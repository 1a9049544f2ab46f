"""The provider's own bill, as its simulator serves it, read by kaquan's reader, stored and matched.

Payments and refunds go through kaquan's real checkout and refund path against
the provider's simulator; the bill is the one the simulator renders for the
day, in the provider's file format. Then the books must still agree.
"""

import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.support.reconciling import WechatShop, wechat_shop

from kaquan import reconciliation
from kaquan.runtime import Runtime
from kaquan.statements import open_statement


@pytest.fixture(params=["wechatpay", "alipay"])
async def shop(request: pytest.FixtureRequest, rt: Runtime, tmp_path: Path) -> AsyncIterator[WechatShop]:
    async with wechat_shop(rt, tmp_path, request.param) as shop:
        yield shop


async def import_bill(shop: WechatShop, data: bytes) -> reconciliation.ImportResult:
    async with shop.rt.db.transaction() as session:
        return await reconciliation.import_statement(
            shop.rt.db,
            session,
            open_statement(shop.simulation.gateway.name, io.BytesIO(data)),
            sha256=hashlib.sha256(data).hexdigest(),
            filename="bill",
            actor="finance",
        )


async def test_the_providers_bill_of_a_day_matches_what_kaquan_recorded(shop: WechatShop) -> None:
    first, second, third = await shop.paid(1990), await shop.paid(4500), await shop.paid(10_000)
    refunded = await shop.refund(second, 1500)
    day = first.day

    bill = shop.simulation.provider.bill(day)
    stored = await import_bill(shop, bill)

    assert stored.lines_new == 4
    assert await shop.match(day) == {"matched": 4}
    assert {pair.record_ref for pair in await shop.matched()} == {
        first.token,
        second.token,
        third.token,
        refunded.refund_no,
    }
    assert (await import_bill(shop, bill)).already_imported
    downloaded_again = await import_bill(shop, shop.simulation.provider.bill(day))  # Alipay's shows when: new bytes
    assert downloaded_again.already_imported or downloaded_again.lines_new == 0
    assert await shop.books_problems() == []
