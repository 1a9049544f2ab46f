"""A real WeChat Pay bill copied straight into the lines table: on PostgreSQL as polars-written CSV, else as rows.

Both ways must store exactly what the reader reads, number repeated
identities exactly, and give way to the staging path, leaving nothing
behind, when a line is stored already.
"""

import io
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import pytest
from sqlalchemy import Table, func, select
from tests.support.statements import MERCHANT, read_all, wechat_bill, wechat_payment, wechat_refund

from kaquan import reconciliation
from kaquan.kit.db import Database
from kaquan.payments.alipay.bill import BillLine, write_bill
from kaquan.reconciliation import copying, importing
from kaquan.reconciliation.days import business_day
from kaquan.reconciliation.models import LINES
from kaquan.runtime import Runtime
from kaquan.statements import open_statement

# What CSV quotes or COPY might misread, in a reference kaquan gets back from the provider
AWKWARD = ["a,b", 'say "hi"', "two\nlines", "back\\slash", "\\.", "\\N", "京东E卡", " x "]
ALIPAY_ACCOUNT = "20881234567890120156"
STORED = (*copying.COLUMNS[: copying.COLUMNS.index("business_day")], "business_day", "occurrence")


class Copies:
    """The tables each way of copying wrote to: the CSV way must be the one taken on PostgreSQL, and the
    staging table written only when the lines could not go straight in."""

    def __init__(self, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        self.csv: list[str] = []
        self.rows: list[str] = []
        for name, tables in (("copy_csv", self.csv), ("copy_rows", self.rows)):
            monkeypatch.setattr(db, name, self._counted(getattr(db, name), tables))

    @staticmethod
    def _counted(copy: Callable[..., Awaitable[None]], tables: list[str]) -> Callable[..., Awaitable[None]]:
        async def counted(session: Any, table: Table, *args: Any, **kwargs: Any) -> None:
            tables.append(table.name)
            await copy(session, table, *args, **kwargs)

        return counted

    @property
    def staged(self) -> bool:
        return "reconciliation_staged_lines" in self.rows


@pytest.fixture
def copies(rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> Copies:
    return Copies(rt.db, monkeypatch)


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three lines a batch: a few lines make several frames, so repeats cross frames as well as fall in one."""
    monkeypatch.setattr(importing, "BATCH", 3)


async def imported(
    rt: Runtime, data: bytes, source: str = "wechatpay", account: str = MERCHANT
) -> reconciliation.ImportResult:
    async with rt.db.transaction() as session:
        return await reconciliation.import_file(
            rt.db, session, source, io.BytesIO(data), filename="bill.csv", actor="finance", account=account
        )


async def stored(rt: Runtime) -> list[tuple[Any, ...]]:
    async with rt.db.read() as session:
        rows = await session.execute(select(*(LINES.c[name] for name in STORED)).order_by(LINES.c.line_no))
    return [tuple(row) for row in rows.all()]


def as_read(data: bytes, occurrences: dict[int, int] | None = None, source: str = "wechatpay") -> list[tuple[Any, ...]]:
    """The bill's lines as the reader reads them, with the day and occurrence the lines table gives them."""
    return [
        (*line[: len(STORED) - 2], business_day(source, line.occurred_at), occurrence)
        for line in read_all(open_statement(source, io.BytesIO(data)))
        for occurrence in [(occurrences or {}).get(line.line_no, 0)]
    ]


async def stored_count(rt: Runtime) -> int:
    async with rt.db.read() as session:
        return int((await session.execute(select(func.count()).select_from(LINES))).scalar_one())


async def test_every_field_is_stored_as_read_awkward_texts_and_days_included(rt: Runtime, copies: Copies) -> None:
    rows = [
        wechat_payment(n, fen=100 + n, at="2026-12-05 23:59:59") | {"商户订单号": text, "商品名称": text}
        for n, text in enumerate(AWKWARD)
    ]
    rows += [wechat_refund(50, at="2026-12-06 00:00:00"), wechat_payment(51, at="2026-12-06 00:00:01")]
    data = wechat_bill(rows)

    result = await imported(rt, data)

    assert (result.lines_new, result.lines_repeated) == (len(rows), 0)
    assert await stored(rt) == as_read(data)
    assert {row[STORED.index("merchant_ref")] for row in await stored(rt)} >= set(AWKWARD)
    assert {row[STORED.index("business_day")] for row in await stored(rt)} == {date(2026, 12, 5), date(2026, 12, 6)}
    assert len(copies.csv) == (len(range(0, len(rows), 3)) if rt.db.copies_csv else 0)  # a copy a batch of three
    assert not copies.staged


async def test_an_alipay_detail_is_stored_as_read_too(rt: Runtime, copies: Copies) -> None:
    at = datetime(2026, 12, 5, 15, 59, 59, tzinfo=UTC)  # 23:59:59 in Beijing
    lines = [
        BillLine(f"20261205220014{n:014d}", f"pt,{n}", "交易", 'a "b", c', at, at, "a***@x.com", 990, 990, "", -6)
        for n in range(4)
    ]
    lines.append(BillLine(lines[0].trade_no, "pt,0", "退款", "d\\e", at, at, "a***@x.com", 990, -500, "rf_1", 3))
    data = write_bill(ALIPAY_ACCOUNT, date(2026, 12, 5), lines, exported_at=at)

    result = await imported(rt, data, "alipay", ALIPAY_ACCOUNT)

    assert (result.lines_new, result.lines_repeated) == (5, 0)
    assert await stored(rt) == as_read(data, source="alipay")
    assert len(copies.csv) == (2 if rt.db.copies_csv else 0)
    assert not copies.staged


async def test_identities_repeated_within_a_frame_and_across_frames_are_numbered_exactly(
    rt: Runtime, copies: Copies
) -> None:
    a, b, c, d = (wechat_payment(n) for n in range(4))
    # frames of three lines: [a a b] [c b a] [d a]
    data = wechat_bill([a, a, b, c, b, a, d, a])

    result = await imported(rt, data)

    assert (result.lines_new, result.lines_repeated) == (8, 4)
    # the first row is line 2: a on lines 2, 3, 7 and 9, b on 4 and 6
    assert await stored(rt) == as_read(data, {3: 1, 7: 2, 9: 3, 6: 1})
    assert not copies.staged


async def test_identities_sharing_a_hash_are_numbered_exactly(
    rt: Runtime, copies: Copies, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every identity then looks like a repeat of the first: all lines but it are held back and numbered after.
    monkeypatch.setattr(copying, "marks_of", lambda identities: pl.zeros(len(identities), pl.UInt64, eager=True))
    a, b, c = (wechat_payment(n) for n in range(3))
    data = wechat_bill([a, b, a, c, a, b])

    result = await imported(rt, data)

    assert (result.lines_new, result.lines_repeated) == (6, 3)
    assert await stored(rt) == as_read(data, {4: 1, 6: 2, 7: 1})
    assert not copies.staged


async def test_a_bill_with_a_line_stored_already_is_stored_through_staging_without_a_line_twice(
    rt: Runtime, copies: Copies
) -> None:
    known = [wechat_payment(n) for n in range(7, 10)]
    await imported(rt, wechat_bill(known))
    assert not copies.staged
    # the stored line comes in the third frame: the first two were copied before the key refused it
    later = [wechat_payment(n) for n in range(10, 16)] + [known[1], wechat_payment(16)]

    result = await imported(rt, wechat_bill(later))

    assert (result.lines_read, result.lines_new, result.lines_known) == (8, 7, 1)
    assert await stored_count(rt) == 10
    async with rt.db.read() as session:
        per_identity = await session.execute(select(LINES.c.identity, func.count()).group_by(LINES.c.identity))
    assert {count for _, count in per_identity.all()} == {1}
    assert copies.staged
    if rt.db.copies_csv:
        assert copies.csv.count("reconciliation_lines") == 1 + 3  # the first bill, then three frames of the second


async def test_a_bill_repeating_more_lines_than_are_held_back_is_numbered_through_staging(
    rt: Runtime, copies: Copies, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(copying, "HELD_BACK_AT_MOST", 1)
    a, b = wechat_payment(1), wechat_payment(2)
    data = wechat_bill([a, b, a, a])

    result = await imported(rt, data)

    assert (result.lines_new, result.lines_repeated) == (4, 2)
    assert await stored(rt) == as_read(data, {4: 1, 5: 2})
    assert copies.staged
