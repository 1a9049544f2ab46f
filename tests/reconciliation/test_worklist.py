"""The worklist: finance lists, annotates and resolves differences; money moves on the ledger once, books agree."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from tests.support.reconciling import WechatShop, payment_line, statement, stranger_line, utc, wechat_shop

from kaquan import ledger, reconciliation
from kaquan.audit.models import AuditEntry
from kaquan.kit.errors import BadInput
from kaquan.runtime import Runtime


@pytest.fixture
async def shop(rt: Runtime, tmp_path: Path) -> AsyncIterator[WechatShop]:
    async with wechat_shop(rt, tmp_path) as shop:
        yield shop


async def resolve(shop: WechatShop, item_id: int, resolution: str, note: str = "") -> reconciliation.DifferenceView:
    async with shop.rt.db.transaction() as session:
        return await reconciliation.resolve(
            shop.rt.db, session, item_id, resolution=resolution, note=note, actor="finance"
        )


async def balance(shop: WechatShop, code: str) -> int:
    async with shop.rt.db.read() as session:
        account = await ledger.account_by_code(session, code)
        return 0 if account is None else (await ledger.balance(session, account.id)).balance_minor


async def audit_actions(shop: WechatShop) -> list[str]:
    async with shop.rt.db.read() as session:
        ours = AuditEntry.action.startswith("reconciliation.")
        actions = select(AuditEntry.action).where(ours).order_by(AuditEntry.id)
        return list((await session.execute(actions)).scalars())


async def test_the_worklist_shows_differences_and_filters_them(shop: WechatShop) -> None:
    good, short = await shop.paid(1990), await shop.paid(2990)
    day = good.day
    await shop.import_(statement([payment_line(good), payment_line(short, amount_minor=2900)], day=day))
    await shop.match(day)

    async with shop.rt.db.read() as session:
        waiting = await reconciliation.list_differences(session, source="wechatpay", first_day=day, last_day=day)
        mismatches = await reconciliation.list_differences(session, classes=("amount_mismatch",))
        needing_nobody = await reconciliation.list_differences(session, states=("auto",))
        matched = await reconciliation.list_matched(session, source="wechatpay", first_day=day, last_day=day)
        other_day = await reconciliation.list_differences(session, first_day=day.replace(year=day.year + 1))
        with pytest.raises(BadInput):
            await reconciliation.list_differences(session, classes=("lost",))

    assert [item.record_ref for item in waiting] == [short.token]
    assert [(item.expected_minor, item.found_minor) for item in mismatches] == [(2990, 2900)]
    assert needing_nobody == []  # a matched pair is no item of the worklist: it is kept apart, compact
    assert [(pair.record_ref, pair.amount_minor, pair.line_no) for pair in matched] == [(good.token, 1990, 2)]
    assert other_day == []
    assert waiting[0].line_no == 3 and waiting[0].line_merchant_ref == short.token


async def test_a_fee_difference_accepted_moves_the_fee_and_the_receivable_once(shop: WechatShop) -> None:
    paid = await shop.paid(10_000)  # fee at 0.6 %: 60 fen
    await shop.import_(statement([payment_line(paid, fee_minor=paid.fee_minor + 2)], day=paid.day))
    await shop.match(paid.day)
    [item] = await shop.items(classes=("fee_mismatch",))
    fees_before = await balance(shop, "fees:gateway:wechatpay:CNY")
    receivable_before = await balance(shop, "receivable:gateway:wechatpay:CNY")

    done = await resolve(shop, item.id, "accept_statement", "WeChat charged 0.62 % this day")
    again = await resolve(shop, item.id, "accept_statement")

    assert done.state == again.state == "resolved"
    assert done.ledger_reference == again.ledger_reference == f"adjustment:reconciliation:{item.id}"
    assert await balance(shop, "fees:gateway:wechatpay:CNY") == fees_before + 2
    assert await balance(shop, "receivable:gateway:wechatpay:CNY") == receivable_before - 2
    assert await shop.books_problems() == []
    assert (await audit_actions(shop)).count("reconciliation.resolved") == 1


async def test_an_unknown_receipt_accepted_waits_in_suspense(shop: WechatShop) -> None:
    day = (await shop.paid()).day
    stranger = stranger_line(at=utc(day), amount_minor=5000)
    await shop.import_(statement([stranger], day=day))
    await shop.match(day)
    [item] = await shop.items(classes=("missing_in_kaquan",))

    await resolve(shop, item.id, "accept_statement", "a buyer paid twice; refund asked")

    assert await balance(shop, "suspense:gateway:wechatpay:CNY") == 5000
    assert await balance(shop, "fees:gateway:wechatpay:CNY") >= stranger.fee_minor
    assert await shop.books_problems() == []


async def test_a_payment_missing_from_the_bill_written_off_is_a_loss(shop: WechatShop) -> None:
    lost = await shop.paid(1990)
    await shop.import_(statement([], day=lost.day))
    await shop.match(lost.day)
    [item] = await shop.items(classes=("missing_in_statement",))

    await resolve(shop, item.id, "write_off", "WeChat confirms the trade never settled")

    assert await balance(shop, "writeoff:gateway:wechatpay:CNY") == 1990
    assert await balance(shop, "receivable:gateway:wechatpay:CNY") == 0
    assert await balance(shop, "fees:gateway:wechatpay:CNY") == 0
    assert await shop.books_problems() == []


async def test_resolving_another_way_after_a_resolution_is_refused(shop: WechatShop) -> None:
    lost = await shop.paid()
    await shop.import_(statement([], day=lost.day))
    await shop.match(lost.day)
    [item] = await shop.items()
    await resolve(shop, item.id, "no_action", "looked into it: the bill was late")

    with pytest.raises(reconciliation.AlreadyResolved):
        await resolve(shop, item.id, "write_off")
    with pytest.raises(BadInput):
        await resolve(shop, item.id, "shrug")


async def test_a_matched_pair_is_kept_apart_from_the_worklist_with_nothing_to_resolve(shop: WechatShop) -> None:
    paid = await shop.paid()
    await shop.import_(statement([payment_line(paid)], day=paid.day))
    await shop.match(paid.day)

    assert await shop.items() == []
    [pair] = await shop.matched()
    assert (pair.record_ref, pair.class_, pair.state) == (paid.token, "matched", "auto")
    with pytest.raises(reconciliation.DifferenceNotFound):
        await resolve(shop, 1000, "no_action")


async def test_matching_again_keeps_annotated_and_resolved_items_and_their_notes(shop: WechatShop) -> None:
    noted, settled, open_ = await shop.paid(), await shop.paid(), await shop.paid()
    await shop.import_(statement([], day=noted.day))
    await shop.match(noted.day)
    by_ref = {item.record_ref: item for item in await shop.items()}
    async with shop.rt.db.transaction() as session:
        await reconciliation.annotate(
            shop.rt.db, session, by_ref[noted.token].id, note="asked WeChat, ticket 7731", actor="finance"
        )
    await resolve(shop, by_ref[settled.token].id, "no_action", "a test trade")
    await shop.import_(statement([payment_line(open_)], day=noted.day, last_day=noted.day))

    assert await shop.match(noted.day) == {"missing_in_statement": 2, "matched": 1}

    after = {item.record_ref: item for item in await shop.items()}
    assert (after[noted.token].state, after[noted.token].note) == ("annotated", "asked WeChat, ticket 7731")
    assert (after[settled.token].state, after[settled.token].resolution) == ("resolved", "no_action")
    assert [pair.record_ref for pair in await shop.matched()] == [open_.token]
    assert await audit_actions(shop) == ["reconciliation.annotated", "reconciliation.resolved"]
