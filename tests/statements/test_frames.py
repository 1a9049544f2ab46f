"""The big formats' columnar form: frames of the same lines `batches()` hands out, checked and rejected alike."""

from datetime import UTC, date, datetime

import polars as pl
import pytest
from tests.support.statements import read_all, stream, wechat_bill, wechat_payment, wechat_refund

from kaquan.payments.alipay.bill import BillLine, write_bill
from kaquan.statements import ColumnarStatement, StatementLine, StatementRejected, open_statement
from kaquan.statements.frames import LINE_SCHEMA

ODD_TEXTS = ('京东E卡, "100元"', "line\nbreak", "back\\slash", 'a "quoted" word', "\\.", "Ünïcødé ✓", "")
SUCCESS_ONLY = [
    name
    for name in wechat_payment(0)
    if name
    not in ("微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态", "申请退款金额")
]


def as_rows(frames: list[pl.DataFrame]) -> list[tuple[object, ...]]:
    """The frames' rows as polars itself turns them into Python values (not through `frames.lines_of`)."""
    return [row for frame in frames for row in frame.rows()]


def wechat(data: bytes) -> ColumnarStatement:
    bill = open_statement("wechatpay", stream(data))
    assert isinstance(bill, ColumnarStatement)
    return bill


def both_forms(data: bytes, size: int) -> tuple[list[pl.DataFrame], list[StatementLine]]:
    return list(wechat(data).frames(size)), read_all(wechat(data), size)


def odd_rows() -> list[dict[str, str]]:
    rows = []
    for n, text in enumerate(ODD_TEXTS):
        rows.append(wechat_payment(n) | {"商品名称": text, "商户订单号": f'pt,{n}"{text[:3]}'})
        rows.append(wechat_refund(100 + n, fen=500, fee_back=3, at="2026-12-05 23:59:59") | {"商品名称": text})
    return rows


@pytest.mark.parametrize(
    ("rows", "columns"),
    [
        pytest.param([wechat_payment(n, fen=100 + n) for n in range(7)] + [wechat_refund(9)], None, id="all"),
        pytest.param([wechat_payment(n, at=f"2026-12-05 0{n}:00:00") for n in range(5)], SUCCESS_ONLY, id="success"),
        pytest.param(
            [wechat_payment(n) | {"订单金额": "25.00", "代金券金额": "5.10"} for n in range(3)]
            + [wechat_refund(5, fen=700) | {"申请退款金额": "9.00", "充值券退款金额": "2.00"}],
            None,
            id="coupons",
        ),
        pytest.param(odd_rows(), None, id="odd_texts"),
        pytest.param(
            [wechat_payment(1), wechat_payment(2) | {"交易状态": "REVOKED"}, wechat_payment(3)], None, id="revoked"
        ),
    ],
)
def test_a_wechat_bill_as_frames_holds_the_lines_its_batches_hold(
    rows: list[dict[str, str]], columns: list[str] | None
) -> None:
    data = wechat_bill(rows, columns=columns) if columns else wechat_bill(rows)

    frames, lines = both_forms(data, size=3)

    assert lines
    assert as_rows(frames) == [tuple(line) for line in lines]
    assert all(frame.schema == LINE_SCHEMA for frame in frames)
    assert [frame.height for frame in frames[:-1]] == [3] * (len(frames) - 1)


def test_odd_texts_come_out_as_written() -> None:
    frames, lines = both_forms(wechat_bill(odd_rows()), size=100)

    assert [line.description for line in lines if line.kind == "payment"] == list(ODD_TEXTS)
    assert frames[0]["merchant_ref"][2] == 'pt,1"lin'


def test_a_frame_is_handed_out_only_once_the_summary_adds_up() -> None:
    rows = [wechat_payment(n) for n in range(5)]
    bill = wechat(wechat_bill(rows, summary={"总交易单数": "6"}))
    frames = bill.frames(2)

    assert [next(frames).height, next(frames).height] == [2, 2]
    with pytest.raises(StatementRejected) as rejected:
        next(frames)
    assert rejected.value.details["column"] == "总交易单数"


def test_a_bad_cell_is_named_by_line_and_column_in_the_columnar_form_too() -> None:
    rows = [wechat_payment(n) for n in range(4)]
    rows[2]["应结订单金额"] = "12.3x"

    with pytest.raises(StatementRejected) as rejected:
        list(wechat(wechat_bill(rows)).frames(10))

    assert rejected.value.details == {"line": 4, "column": "应结订单金额"}


def test_a_statement_is_read_once_whichever_form() -> None:
    bill = wechat(wechat_bill([wechat_payment(1)]))
    list(bill.frames())

    with pytest.raises(RuntimeError):
        list(bill.batches())


def test_an_alipay_detail_as_frames_holds_the_lines_its_batches_hold() -> None:
    at = datetime(2026, 12, 5, 3, 4, 5, tzinfo=UTC)
    trade = "2026120522001400001234567890"
    data = write_bill(
        "20881234567890120156",
        date(2026, 12, 5),
        [
            BillLine(trade, "pt_1", "交易", "京东E卡, 100元", at, at, "a***@x.com", 1990, 1990, "", -12),
            BillLine(trade + "1", "pt_2", "交易", "腾讯视频", at, at, "b***@x.com", 500, 500, "", -3),
            BillLine(trade, "pt_1", "退款", "京东E卡, 100元", at, at, "a***@x.com", 1990, -1000, "rf_1", 6),
        ],
        exported_at=at,
    )
    detail = open_statement("alipay", stream(data))
    assert isinstance(detail, ColumnarStatement)

    frames = list(detail.frames(2))
    lines = read_all(open_statement("alipay", stream(data)), 2)

    assert [line.kind for line in lines] == ["payment", "payment", "refund"]
    assert as_rows(frames) == [tuple(line) for line in lines]
    assert all(frame.schema == LINE_SCHEMA for frame in frames)


def test_a_line_holds_one_python_object_per_second_and_per_repeated_text() -> None:
    rows = [wechat_payment(n, at="2026-12-05 09:15:02") for n in range(40)]

    lines = read_all(wechat(wechat_bill(rows)))

    assert len({id(line.occurred_at) for line in lines}) == 1
    assert len({id(line.description) for line in lines}) == 1
    assert lines[0].occurred_at.tzinfo is UTC
