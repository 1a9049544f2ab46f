"""Plain matches (a payment line and the payment only it names, agreeing, of one day) are kept as runs of line
ids; everything else goes through the passes, and every line still ends in exactly one class."""

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select, text
from tests.support.reconciling import WechatShop, payment_line, statement, wechat_shop

from kaquan import reconciliation
from kaquan.kit.migrate import downgrade, upgrade
from kaquan.reconciliation import plain_matches
from kaquan.reconciliation.models import MatchedRun
from kaquan.runtime import Runtime


@pytest.fixture
async def shop(rt: Runtime, tmp_path: Path) -> AsyncIterator[WechatShop]:
    async with wechat_shop(rt, tmp_path) as shop:
        yield shop


async def runs(shop: WechatShop) -> list[tuple[date, int]]:
    """The runs stored, as (day, lines), in line order."""
    async with shop.rt.db.read() as session:
        found = await session.scalars(select(MatchedRun).order_by(MatchedRun.first_line_id))
        return [(run.business_day, run.lines) for run in found]


async def test_a_days_plain_matches_are_runs_broken_where_a_line_differs(shop: WechatShop) -> None:
    sold = [await shop.paid(price) for price in (1000, 2000, 3000, 4000, 5000)]
    lines = [payment_line(paid) for paid in sold]
    lines[2] = payment_line(sold[2], amount_minor=2999)
    day = sold[0].day
    await shop.import_(statement(lines, day=day))

    assert await shop.match(day) == {"matched": 4, "amount_mismatch": 1}
    assert await runs(shop) == [(day, 2), (day, 2)]
    matched = await shop.matched()
    assert [pair.record_ref for pair in matched] == [sold[n].token for n in (0, 1, 3, 4)]
    assert {(pair.record_kind, pair.business_day, pair.class_, pair.state) for pair in matched} == {
        ("payment", day, "matched", "auto")
    }
    assert [pair.line_identity for pair in matched] == [lines[n].identity for n in (0, 1, 3, 4)]


async def test_matched_lines_are_listed_in_pages_across_runs(shop: WechatShop) -> None:
    sold = [await shop.paid(price) for price in (1000, 2000, 3000, 4000, 5000)]
    lines = [payment_line(paid) for paid in sold]
    lines[2] = payment_line(sold[2], fee_minor=sold[2].fee_minor + 1)
    await shop.import_(statement(lines, day=sold[0].day))
    await shop.match(sold[0].day)

    pages, after = [], 0
    async with shop.rt.db.read() as session:
        while page := await reconciliation.list_matched(session, after_line_id=after, limit=3):
            pages.append([pair.record_ref for pair in page])
            after = page[-1].line_id

    assert pages == [[sold[0].token, sold[1].token, sold[3].token], [sold[4].token]]


async def test_a_payment_two_lines_name_is_paired_by_the_passes_and_breaks_the_run(shop: WechatShop) -> None:
    before, paid, after = await shop.paid(1000), await shop.paid(2000), await shop.paid(3000)
    twin = payment_line(paid, identity="pay:4200000000999", counterparty_ref="4200000000999")
    await shop.import_(statement([payment_line(before), payment_line(paid), twin, payment_line(after)], day=paid.day))

    assert await shop.match(paid.day) == {"matched": 3, "missing_in_kaquan": 1}
    assert await runs(shop) == [(paid.day, 1), (paid.day, 1)]
    assert [pair.record_ref for pair in await shop.matched()] == [before.token, paid.token, after.token]


async def test_matching_a_day_again_replaces_its_runs(shop: WechatShop) -> None:
    sold = [await shop.paid(price) for price in (1000, 2000, 3000)]
    await shop.import_(statement([payment_line(paid) for paid in sold], day=sold[0].day))
    await shop.match(sold[0].day)

    assert await shop.match(sold[0].day) == {"matched": 3}
    assert await runs(shop) == [(sold[0].day, 3)]
    assert len(await shop.matched()) == 3


async def test_a_payment_refunded_after_its_day_was_matched_leaves_the_run_and_is_counted_once(
    shop: WechatShop,
) -> None:
    first, refunded, last = await shop.paid(1000), await shop.paid(2000), await shop.paid(3000)
    await shop.import_(statement([payment_line(paid) for paid in (first, refunded, last)], day=first.day))
    assert await shop.match(first.day) == {"matched": 3}

    await shop.refund(refunded)  # the whole of it: the payment is refunded now, the bill's line still SUCCESS

    assert (await shop.match(first.day))["matched"] == 3
    assert await runs(shop) == [(first.day, 1), (first.day, 1)]
    assert [pair.record_ref for pair in await shop.matched()] == [first.token, refunded.token, last.token]


async def test_an_annotated_line_keeps_its_item_and_breaks_the_run(shop: WechatShop) -> None:
    sold = [await shop.paid(price) for price in (1000, 2000, 3000)]
    lines = [payment_line(paid) for paid in sold]
    lines[1] = payment_line(sold[1], amount_minor=1999)
    await shop.import_(statement(lines, day=sold[0].day))
    await shop.match(sold[0].day)
    [item] = await shop.items()
    async with shop.rt.db.transaction() as session:
        await reconciliation.annotate(shop.rt.db, session, item.id, note="买家补差价", actor="finance")

    assert await shop.match(sold[0].day) == {"matched": 2, "amount_mismatch": 1}
    assert await runs(shop) == [(sold[0].day, 1), (sold[0].day, 1)]
    [kept] = await shop.items()
    assert (kept.id, kept.state, kept.note) == (item.id, "annotated", "买家补差价")


async def test_downgrading_the_schema_puts_each_line_of_a_run_back_as_a_compact_match(shop: WechatShop) -> None:
    sold = [await shop.paid(price) for price in (1000, 2000)]
    await shop.import_(statement([payment_line(paid) for paid in sold], day=sold[0].day))
    await shop.match(sold[0].day)
    db = shop.rt.db

    await downgrade(db, "7b3e9d2c4a18")
    try:
        async with db.engine.connect() as conn:
            found = await conn.execute(
                text("SELECT record_kind, record_ref FROM reconciliation_matches ORDER BY line_id")
            )
            kept = [tuple(row) for row in found]
    finally:
        await upgrade(db)

    assert kept == [("payment", paid.token) for paid in sold]


async def test_a_window_of_more_lines_than_the_split_holds_is_matched_by_the_passes_alone(
    shop: WechatShop, monkeypatch: pytest.MonkeyPatch
) -> None:
    sold = [await shop.paid(price) for price in (1000, 2000, 3000)]
    lines = [payment_line(paid) for paid in sold]
    lines[1] = payment_line(sold[1], amount_minor=1999)
    await shop.import_(statement(lines, day=sold[0].day))
    monkeypatch.setattr(plain_matches, "LINES_AT_MOST", 2)

    assert await shop.match(sold[0].day) == {"matched": 2, "amount_mismatch": 1}
    assert await runs(shop) == []
    assert [pair.record_ref for pair in await shop.matched()] == [sold[0].token, sold[2].token]
