"""The console's order list query: the shop's calendar days as UTC bounds, newest first, bounded downloads."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from tests.support.builders import given_sku_with_codes, place_order

from kaquan.orders import listing
from kaquan.runtime import Runtime

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_a_shop_day_in_shanghai_starts_at_16_00_utc_the_day_before() -> None:
    start, end = listing.local_days(date(2026, 12, 6), date(2026, 12, 7), SHANGHAI)

    assert start == datetime(2026, 12, 5, 16, 0, tzinfo=UTC)
    assert end == datetime(2026, 12, 7, 16, 0, tzinfo=UTC)


def test_an_open_range_is_open_at_that_end() -> None:
    assert listing.local_days(None, date(2026, 12, 6), SHANGHAI) == (None, datetime(2026, 12, 6, 16, 0, tzinfo=UTC))
    assert listing.local_days(None, None, SHANGHAI) == (None, None)


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(listing.BadDateRange):
        listing.local_days(date(2026, 12, 7), date(2026, 12, 6), SHANGHAI)


def test_an_unknown_status_is_refused_not_matched_against_nothing() -> None:
    with pytest.raises(listing.UnknownOrderStatus):
        listing.OrderFilter(status="shipped")


async def test_downloads_hold_the_newest_orders_up_to_their_limit_and_pages_stay_bounded(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    sku = await given_sku_with_codes(rt, 5)
    numbers = [(await place_order(rt, sku))[0] for _ in range(5)][::-1]
    monkeypatch.setattr(listing, "_EXPORT_CHUNK", 2)
    monkeypatch.setattr(listing, "MAX_PAGE_SIZE", 4)

    async with rt.db.read() as session:
        three = [order.number async for order in listing.for_export(session, listing.OrderFilter(), limit=3)]
        every = [order.number async for order in listing.for_export(session, listing.OrderFilter(), limit=100)]
        page = await listing.recent(session, listing.OrderFilter(), before_id=None, limit=10_000)

    assert three == numbers[:3]
    assert every == numbers
    assert [order.number for order in page] == numbers[:4]  # a page never exceeds MAX_PAGE_SIZE
