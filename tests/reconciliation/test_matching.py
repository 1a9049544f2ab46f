"""Matching: every statement line and every kaquan payment and refund of a day ends in exactly one class."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from tests.support.reconciling import (
    WechatShop,
    items_by_ref,
    payment_line,
    refund_line,
    statement,
    stranger_line,
    utc,
    wechat_shop,
)

from kaquan import reconciliation
from kaquan.kit.errors import NotFound
from kaquan.runtime import Runtime


@pytest.fixture
async def shop(rt: Runtime, tmp_path: Path) -> AsyncIterator[WechatShop]:
    async with wechat_shop(rt, tmp_path) as shop:
        yield shop


async def test_a_bill_that_agrees_with_kaquan_matches_every_payment_and_refund(shop: WechatShop) -> None:
    first, second = await shop.paid(1990), await shop.paid(4500)
    refunded = await shop.refund(second, 1500)
    day = first.day

    await shop.import_(statement([payment_line(first), payment_line(second), refund_line(refunded)], day=day))

    assert await shop.match(day) == {"matched": 3}
    assert await items_by_ref(shop) == {first.token: "matched", second.token: "matched", refunded.refund_no: "matched"}
    assert await shop.items() == []  # nothing for finance: the pairs are kept apart from the worklist
    assert all(pair.state == "auto" for pair in await shop.matched())


async def test_each_kind_of_difference_lands_in_its_own_class(shop: WechatShop) -> None:
    prices = (1000, 2000, 3000, 4000, 5000, 6000)
    missing, short, fee, closed, doubled, plain = [await shop.paid(price) for price in prices]
    refund_not_there = await shop.refund(plain, 600)
    refund_short = await shop.refund(missing, 100)
    day = missing.day
    stranger = stranger_line(at=utc(day))
    strange_refund = stranger_line(at=utc(day), kind="refund", amount_minor=300)

    lines = [
        payment_line(missing),
        payment_line(short, amount_minor=short.amount_minor - 1),
        payment_line(fee, fee_minor=fee.fee_minor + 1),
        payment_line(closed, status="CLOSED"),
        payment_line(doubled),
        payment_line(doubled),
        payment_line(plain),
        refund_line(refund_short, amount_minor=99),
        stranger,
        strange_refund,
    ]
    lines.remove(payment_line(missing))
    await shop.import_(statement(lines, day=day))

    assert await shop.match(day) == {
        "missing_in_statement": 1,
        "amount_mismatch": 1,
        "fee_mismatch": 1,
        "status_mismatch": 1,
        "matched": 2,
        "duplicate_line": 1,
        "refund_missing_in_statement": 1,
        "refund_amount_mismatch": 1,
        "missing_in_kaquan": 1,
        "refund_missing_in_kaquan": 1,
    }
    by_ref = await items_by_ref(shop)
    assert by_ref[missing.token] == "missing_in_statement"
    assert by_ref[short.token] == "amount_mismatch"
    assert by_ref[fee.token] == "fee_mismatch"
    assert by_ref[closed.token] == "status_mismatch"
    assert by_ref[doubled.token] == "matched"
    assert by_ref[refund_not_there.refund_no] == "refund_missing_in_statement"
    assert by_ref[refund_short.refund_no] == "refund_amount_mismatch"
    assert by_ref[stranger.identity] == "missing_in_kaquan"
    assert by_ref[strange_refund.identity] == "refund_missing_in_kaquan"
    [mismatch] = await shop.items(classes=("amount_mismatch",))
    assert (mismatch.expected_minor, mismatch.found_minor) == (short.amount_minor, short.amount_minor - 1)


async def test_of_two_lines_giving_one_payments_reference_the_first_matches_and_the_other_is_kaquans_to_explain(
    shop: WechatShop,
) -> None:
    paid, other = await shop.paid(1990), await shop.paid(2990)
    first = payment_line(paid)
    second = payment_line(paid, identity="pay:4200000000999", counterparty_ref="4200000000999")
    await shop.import_(statement([payment_line(other), first, second], day=paid.day))

    assert await shop.match(paid.day) == {"matched": 2, "missing_in_kaquan": 1}
    assert {pair.line_identity for pair in await shop.matched()} == {payment_line(other).identity, first.identity}
    [unexplained] = await shop.items()
    assert unexplained.line_kind == "payment"
    assert unexplained.found_minor == paid.amount_minor


async def test_a_line_without_a_reference_matches_by_amount_on_its_day(shop: WechatShop) -> None:
    paid = await shop.paid(2990)
    await shop.import_(statement([payment_line(paid, merchant_ref="", counterparty_ref="")], day=paid.day))

    assert await shop.match(paid.day) == {"matched": 1}


async def test_a_line_found_by_the_providers_transaction_id_alone_matches(shop: WechatShop) -> None:
    paid = await shop.paid(2990)
    await shop.import_(statement([payment_line(paid, merchant_ref="somebody-elses")], day=paid.day))

    assert await shop.match(paid.day) == {"matched": 1}


async def test_matching_a_day_twice_gives_the_same_items(shop: WechatShop) -> None:
    paid, lost = await shop.paid(), await shop.paid()
    await shop.import_(statement([payment_line(paid)], day=paid.day))
    first = await shop.match(paid.day)

    again = await shop.match(paid.day)

    assert first == again == {"matched": 1, "missing_in_statement": 1}
    assert (len(await shop.items()), len(await shop.matched())) == (1, 1)
    assert lost.token in await items_by_ref(shop)


async def test_matching_a_day_twice_at_once_leaves_each_line_and_payment_in_one_item(shop: WechatShop) -> None:
    # No unique key holds a record to one item: the two runs take turns (a lock per source), the second
    # replacing what the first wrote.
    paid, lost = await shop.paid(), await shop.paid()
    await shop.import_(statement([payment_line(paid), stranger_line(at=utc(paid.day))], day=paid.day))

    both = await asyncio.gather(shop.match(paid.day), shop.match(paid.day))

    assert list(both) == [{"matched": 1, "missing_in_statement": 1, "missing_in_kaquan": 1}] * 2
    items, [pair] = await shop.items(), await shop.matched()
    assert sorted([pair.record_ref, *(item.record_ref or "" for item in items)]) == sorted(["", paid.token, lost.token])
    assert len({item.line_id for item in items if item.line_id is not None} | {pair.line_id}) == 2


async def test_gateways_marketplace_stores_and_agents_are_matched_over_a_period_that_exists(
    shop: WechatShop,
) -> None:
    paid = await shop.paid()
    for source, refused in (
        ("generic:bank", reconciliation.MappingNotFound),  # no mapping saved under that name
        ("paypal", reconciliation.UnknownSource),
        ("agent:nobody", NotFound),
        ("marketplace:nowhere", NotFound),
    ):
        async with shop.rt.db.transaction() as session:
            with pytest.raises(refused):
                await reconciliation.match_period(
                    shop.rt.db, session, source=source, first_day=paid.day, last_day=paid.day
                )
    async with shop.rt.db.transaction() as session:
        with pytest.raises(reconciliation.BadPeriod):
            await reconciliation.match_period(
                shop.rt.db, session, source="wechatpay", first_day=paid.day, last_day=paid.day - timedelta(days=1)
            )
    assert await shop.items() == []
