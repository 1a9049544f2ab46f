"""Importing a statement: every line stored once, the same file twice a no-op, a rejected file leaves nothing."""

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.support.reconciling import MemoryStatement, WechatShop, statement, stranger_line, utc, wechat_shop

from kaquan import reconciliation
from kaquan.kit import clock
from kaquan.reconciliation import copying, importing
from kaquan.reconciliation.models import LINES
from kaquan.runtime import Runtime
from kaquan.statements import StatementLine, StatementRejected

DAY = clock.now().date() - timedelta(days=3)


@pytest.fixture(params=["rereadable", "read_once"])
async def shop(rt: Runtime, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[WechatShop]:
    """Every rule holds whether the file can be read again (lines copied straight in, the staging table only
    when something is stored already) or only once (every line through the staging table)."""
    async with wechat_shop(rt, tmp_path) as shop:
        shop.rereadable = request.param == "rereadable"
        yield shop


@pytest.fixture
async def rereadable(rt: Runtime, tmp_path: Path) -> AsyncIterator[WechatShop]:
    async with wechat_shop(rt, tmp_path) as shop:
        yield shop


async def stored_lines(shop: WechatShop) -> int:
    async with shop.rt.db.read() as session:
        lines = await session.execute(select(func.count()).select_from(LINES))
        return int(lines.scalar_one())


async def test_every_line_is_stored_with_its_day_and_counted(shop: WechatShop) -> None:
    lines = [stranger_line(at=utc(DAY, hour)) for hour in (0, 9, 23)]

    result = await shop.import_(statement(lines, day=DAY))

    assert (result.lines_read, result.lines_new, result.lines_known, result.lines_repeated) == (3, 3, 0, 0)
    assert not result.already_imported
    assert await stored_lines(shop) == 3
    await shop.match(DAY)
    days = {item.business_day for item in await shop.items()} | {pair.business_day for pair in await shop.matched()}
    assert days == {DAY}


async def test_the_same_file_twice_stores_nothing_and_says_so(shop: WechatShop) -> None:
    bill = statement([stranger_line(at=utc(DAY)) for _ in range(4)], day=DAY)
    first = await shop.import_(bill)

    again = await shop.import_(bill)

    assert again.already_imported
    assert again.statement_id == first.statement_id
    assert await stored_lines(shop) == 4


async def test_an_overlapping_period_stores_only_the_lines_not_stored_yet(shop: WechatShop) -> None:
    monday = [stranger_line(at=utc(DAY)) for _ in range(3)]
    tuesday = [stranger_line(at=utc(DAY + timedelta(days=1))) for _ in range(2)]
    await shop.import_(statement(monday, day=DAY))

    week = await shop.import_(statement([*monday, *tuesday], day=DAY, last_day=DAY + timedelta(days=1)))

    assert (week.lines_read, week.lines_new, week.lines_known) == (5, 2, 3)
    assert await stored_lines(shop) == 5


async def test_a_line_repeated_inside_one_file_is_kept_as_a_duplicate_line(shop: WechatShop) -> None:
    line = stranger_line(at=utc(DAY))

    result = await shop.import_(statement([line, line, line], day=DAY))

    assert (result.lines_new, result.lines_repeated) == (3, 2)
    assert await shop.match(DAY) == {"missing_in_kaquan": 1, "duplicate_line": 2}


async def test_a_rejected_file_leaves_nothing_behind(shop: WechatShop) -> None:
    lines = [stranger_line(at=utc(DAY)) for _ in range(120)]
    bad = replace(statement(lines, day=DAY), reject_at=110)

    with pytest.raises(StatementRejected) as rejected:
        await shop.import_(bad)

    assert rejected.value.details == {"line": 110, "column": "订单金额"}
    assert await stored_lines(shop) == 0
    fixed = replace(bad, reject_at=None)
    assert (await shop.import_(fixed)).lines_new == 120


async def test_a_file_for_another_merchant_is_refused(shop: WechatShop) -> None:
    theirs = statement([stranger_line(at=utc(DAY))], day=DAY, account="1900000999")

    with pytest.raises(reconciliation.StatementWrongAccount) as refused:
        await shop.import_(theirs)

    assert refused.value.code == "statement_wrong_account"
    assert await stored_lines(shop) == 0
    assert (await shop.import_(theirs, expected=None)).lines_new == 1


async def test_a_line_stored_under_another_day_is_known_not_stored_again(shop: WechatShop) -> None:
    # A refund that one bill files under the day it was asked for and the next under the day it went through:
    # nothing of the second file's day is stored yet, so the lines go in by a plain INSERT first, which the
    # unique key refuses; the import then stores only the new line.
    refund = stranger_line(at=utc(DAY, 23), kind="refund")
    await shop.import_(statement([refund], day=DAY))
    later = refund._replace(occurred_at=utc(DAY + timedelta(days=1), 1))
    new = stranger_line(at=utc(DAY + timedelta(days=1), 2))

    next_day = await shop.import_(statement([later, new], day=DAY + timedelta(days=1)))

    assert (next_day.lines_read, next_day.lines_new, next_day.lines_known) == (2, 1, 1)
    assert await stored_lines(shop) == 2


async def test_repeats_are_numbered_among_lines_that_do_not_repeat(shop: WechatShop) -> None:
    once = [stranger_line(at=utc(DAY)) for _ in range(5)]
    twice, thrice = stranger_line(at=utc(DAY)), stranger_line(at=utc(DAY))
    lines = [twice, once[0], thrice, once[1], twice, once[2], thrice, once[3], thrice, once[4]]

    result = await shop.import_(statement(lines, day=DAY))

    assert (result.lines_new, result.lines_repeated) == (10, 3)
    async with shop.rt.db.read() as session:
        stored = await session.execute(select(LINES.c.identity, LINES.c.line_no, LINES.c.occurrence))
        occurrences = {(identity, line_no): occurrence for identity, line_no, occurrence in stored.all()}
    assert [occurrences[twice.identity, n] for n in (2, 6)] == [0, 1]
    assert [occurrences[thrice.identity, n] for n in (4, 8, 10)] == [0, 1, 2]
    assert {occurrences[line.identity, n] for line, n in zip(once, (3, 5, 7, 9, 11), strict=True)} == {0}
    assert await shop.match(DAY) == {"missing_in_kaquan": 7, "duplicate_line": 3}


async def test_the_reader_runs_at_most_one_batch_ahead_of_storing(
    shop: WechatShop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importing, "BATCH", 10)

    bill = statement([stranger_line(at=utc(DAY)) for _ in range(35)], day=DAY)
    read: list[int] = []
    batches = bill.batches

    def counted(size: int = 50_000) -> Iterator[list[StatementLine]]:
        for batch in batches(size):
            read.append(len(batch))
            yield batch

    monkeypatch.setattr(bill, "batches", counted)
    stored: list[tuple[int, int]] = []

    async def reopen() -> MemoryStatement:
        return bill

    async with shop.rt.db.transaction() as session:
        await reconciliation.import_statement(
            shop.rt.db,
            session,
            bill,
            sha256=bill.sha256,
            filename="bill.csv",
            actor="finance",
            on_batch=lambda n: stored.append((n, len(read))),
            reopen=reopen if shop.rereadable else None,
        )

    assert [n for n, _ in stored] == [10, 10, 10, 5]
    # when a batch is stored, the reader has read it and at most the next one: memory holds two batches at most
    assert all(already <= batch + 1 for batch, (_, already) in enumerate(stored, start=1))
    assert await stored_lines(shop) == 35


async def test_a_file_nothing_of_which_is_stored_is_read_once(rereadable: WechatShop) -> None:
    line = stranger_line(at=utc(DAY))

    result = await rereadable.import_(statement([line, stranger_line(at=utc(DAY)), line], day=DAY))

    assert (result.lines_new, result.lines_repeated, rereadable.reopened) == (3, 1, 0)


@pytest.mark.parametrize("hashes", ["apart", "shared"])
async def test_a_file_something_of_which_is_stored_is_read_again_and_only_the_new_lines_stored(
    rereadable: WechatShop, monkeypatch: pytest.MonkeyPatch, hashes: str
) -> None:
    # With one hash for every identity the known line is held back as a possible repeat; it is refused then.
    if hashes == "shared":
        monkeypatch.setattr(copying, "hash", lambda _: 0, raising=False)
    known = stranger_line(at=utc(DAY))
    await rereadable.import_(statement([known], day=DAY))

    result = await rereadable.import_(statement([stranger_line(at=utc(DAY)), known], day=DAY))

    assert (result.lines_read, result.lines_new, result.lines_known, result.lines_repeated) == (2, 1, 1, 0)
    assert rereadable.reopened == 1
    assert await stored_lines(rereadable) == 2


async def test_identities_that_share_a_hash_are_numbered_exactly(
    rereadable: WechatShop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every identity then looks like a repeat of the first: all lines but it are held back and numbered after.
    monkeypatch.setattr(copying, "hash", lambda _: 0, raising=False)
    a, b, c = (stranger_line(at=utc(DAY)) for _ in range(3))

    result = await rereadable.import_(statement([a, b, a, c, a, b], day=DAY))

    assert (result.lines_new, result.lines_repeated, rereadable.reopened) == (6, 3, 0)
    async with rereadable.rt.db.read() as session:
        stored = await session.execute(select(LINES.c.identity, LINES.c.occurrence).order_by(LINES.c.line_no))
    assert [(identity, n) for identity, n in stored.all()] == [
        (a.identity, 0), (b.identity, 0), (a.identity, 1), (c.identity, 0), (a.identity, 2), (b.identity, 1)
    ]  # fmt: skip


async def test_a_file_repeating_more_lines_than_are_held_back_is_numbered_through_staging(
    rereadable: WechatShop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(copying, "HELD_BACK_AT_MOST", 1)
    line = stranger_line(at=utc(DAY))

    result = await rereadable.import_(statement([line, line, line, stranger_line(at=utc(DAY))], day=DAY))

    assert (result.lines_new, result.lines_repeated, rereadable.reopened) == (4, 2, 1)
    assert await rereadable.match(DAY) == {"missing_in_kaquan": 2, "duplicate_line": 2}
