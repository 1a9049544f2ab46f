"""A payment made just before midnight that the provider files under the next day: a timing difference, not an error."""

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from tests.support.reconciling import (
    WechatShop,
    items_by_ref,
    payment_line,
    seconds_until_beijing,
    statement,
    wechat_shop,
)

from kaquan.kit import clock
from kaquan.runtime import Runtime


@pytest.fixture
async def shop(rt: Runtime, tmp_path: Path) -> AsyncIterator[WechatShop]:
    async with wechat_shop(rt, tmp_path) as shop:
        yield shop


async def test_a_payment_at_midnight_waits_for_the_next_days_bill_and_matches_when_it_arrives(shop: WechatShop) -> None:
    clock.travel(seconds_until_beijing(23, 59, 50))
    late = await shop.paid()
    day, next_day = late.day, late.day + timedelta(days=1)
    await shop.import_(statement([], day=day))

    assert await shop.match(day) == {"timing": 1}
    [waiting] = await shop.items()
    assert waiting.state == "auto"

    filed_late = payment_line(late, occurred_at=late.at + timedelta(seconds=15))
    await shop.import_(statement([filed_late], day=next_day))

    assert await shop.match(day) == {"matched": 1}
    assert await shop.match(next_day) == {}
    assert await items_by_ref(shop) == {late.token: "matched"}


async def test_a_payment_at_midnight_is_missing_once_the_next_day_is_in_without_it(shop: WechatShop) -> None:
    clock.travel(seconds_until_beijing(23, 59, 50))
    late = await shop.paid()
    day = late.day
    await shop.import_(statement([], day=day, last_day=day + timedelta(days=1)))

    assert await shop.match(day) == {"missing_in_statement": 1}


async def test_a_payment_at_noon_missing_from_its_days_bill_is_missing_at_once(shop: WechatShop) -> None:
    clock.travel(seconds_until_beijing(12))
    paid = await shop.paid()
    await shop.import_(statement([], day=paid.day))

    assert await shop.match(paid.day) == {"missing_in_statement": 1}
