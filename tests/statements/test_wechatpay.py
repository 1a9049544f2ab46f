"""WeChat Pay's trade bill (交易账单) read into statement lines, by column name, checked against its summary."""

import gzip
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from tests.support.statements import (
    MERCHANT,
    WECHAT_ALL,
    OneWay,
    read_all,
    stream,
    wechat_bill,
    wechat_payment,
    wechat_refund,
    write_wechat_bill,
)

from kaquan.payments.wechatpay import protocol
from kaquan.payments.wechatpay.sim_trades import SimRefund, SimTrade, bill_lines
from kaquan.statements import StatementRejected, columnar, open_statement


def test_a_payment_row_is_a_payment_line_in_kaquan_terms() -> None:
    bill = open_statement("wechatpay", stream(wechat_bill([wechat_payment(1, fen=10_000, fee=60)])))
    [line] = read_all(bill)
    assert bill.header.source == "wechatpay"
    assert bill.header.account == MERCHANT
    assert line.line_no == 2
    assert line.kind == "payment"
    assert line.identity == "pay:4200002026120500000000000001"
    assert line.merchant_ref == "pt_00000001"
    assert line.counterparty_ref == "4200002026120500000000000001"
    assert (line.amount_minor, line.fee_minor, line.currency) == (10_000, 60, "CNY")
    assert line.occurred_at == datetime(2026, 12, 5, 1, 15, 2, tzinfo=UTC)  # 09:15:02 in Beijing
    assert line.status == "SUCCESS"
    assert line.description == "京东E卡 100元"


def test_a_refund_row_is_a_refund_line_with_the_fee_given_back_positive() -> None:
    bill = open_statement("wechatpay", stream(wechat_bill([wechat_refund(7, fen=5_000, fee_back=30)])))
    [line] = read_all(bill)
    assert line.kind == "refund"
    assert line.identity == "refund:5030002026120500000000000007"
    assert line.refund_ref == "rf_00000007"
    assert line.merchant_ref == "pt_00000007"
    assert line.counterparty_ref == "5030002026120500000000000007"
    assert (line.amount_minor, line.fee_minor) == (5_000, 30)
    assert line.occurred_at == datetime(2026, 12, 5, 2, 0, tzinfo=UTC)


def test_the_simulators_bill_reads_back_as_the_trades_and_refunds_it_drew() -> None:
    paid = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
    trade = SimTrade(
        appid="wx2421b1c4370ec43b",
        mchid=MERCHANT,
        out_trade_no="pt_sim",
        description="腾讯视频 月卡",
        attach="",
        total=2500,
        notify_url="https://shop.example/notify",
        trade_type="NATIVE",
        time_expire=paid,
        prepay_id="wx_prepay",
        state="SUCCESS",
        transaction_id="4200000001",
        success_time=paid,
    )
    refund = SimRefund(
        refund_id="50300000001",
        out_refund_no="rf_sim",
        out_trade_no="pt_sim",
        transaction_id="4200000001",
        refund=2500,
        total=2500,
        reason="",
        notify_url=None,
        created_at=paid,
        status="SUCCESS",
        success_time=datetime(2026, 12, 5, 3, 0, tzinfo=UTC),
    )
    rows = bill_lines({"pt_sim": trade}, [refund], day=date(2026, 12, 5), bill_type="ALL", fee_rate_bp=60)
    lines = read_all(open_statement("wechatpay", stream(protocol.render_bill(rows)), account=MERCHANT))
    assert [(line.kind, line.identity, line.amount_minor, line.fee_minor) for line in lines] == [
        ("payment", "pay:4200000001", 2500, 15),
        ("refund", "refund:50300000001", 2500, 15),
    ]
    assert lines[1].refund_ref == "rf_sim"


SUCCESS_BILL = (
    "\ufeff交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,"
    "货币种类,应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,订单金额,费率备注\r\n"
    "`2026-12-05 09:15:02,`wx2421b1c4370ec43b,`1900000109,`0,`,`4200002026120512345678901234,`pt_a1,"
    "`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`SUCCESS,`CMB_CREDIT,`CNY,`100.00,`0.00,`京东E卡,`,`0.60,`0.60%,`100.00,`\r\n"
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n"
    "`1,`100.00,`0.00,`0.00,`0.60,`100.00,`0.00\r\n"
)


def test_a_success_bill_without_refund_columns_reads() -> None:
    [line] = read_all(open_statement("wechatpay", stream(SUCCESS_BILL.encode())))
    assert (line.kind, line.merchant_ref, line.amount_minor, line.fee_minor) == ("payment", "pt_a1", 10_000, 60)


REFUND_BILL = (
    "\ufeff交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,"
    "货币种类,应结订单金额,代金券金额,退款申请时间,退款成功时间,微信退款单号,商户退款单号,退款金额,充值券退款金额,"
    "退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\r\n"
    "`2026-12-04 22:00:00,`wx2421b1c4370ec43b,`1900000109,`0,`,`4200002026120412345678901234,`pt_a1,"
    "`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`REFUND,`CMB_CREDIT,`CNY,`100.00,`0.00,`2026-12-05 10:00:00,"
    "`2026-12-05 10:00:03,`50300020261205123456789012,`rf_a1,`40.00,`0.00,`ORIGINAL,`SUCCESS,`京东E卡,`,"
    "`-0.24,`0.60%,`100.00,`40.00,`\r\n"
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n"
    "`1,`100.00,`40.00,`0.00,`-0.24,`100.00,`40.00\r\n"
)


def test_a_refund_bill_dates_a_refund_by_its_success_time_not_the_original_trade() -> None:
    [line] = read_all(open_statement("wechatpay", stream(REFUND_BILL.encode())))
    assert (line.kind, line.refund_ref, line.amount_minor, line.fee_minor) == ("refund", "rf_a1", 4_000, 24)
    assert line.occurred_at == datetime(2026, 12, 5, 2, 0, 3, tzinfo=UTC)


def test_columns_are_found_by_name_in_any_order_with_extra_columns() -> None:
    shuffled = ("新的列", *reversed(WECHAT_ALL))
    rows = [wechat_payment(1) | {"新的列": "x"}, wechat_refund(2)]
    lines = read_all(open_statement("wechatpay", stream(wechat_bill(rows, columns=shuffled))))
    assert [line.identity for line in lines] == [
        "pay:4200002026120500000000000001",
        "refund:5030002026120500000000000002",
    ]


def test_a_bill_without_bom_gzipped_or_from_a_one_way_stream_reads_the_same() -> None:
    rows = [wechat_payment(n) for n in range(3)]
    expected = read_all(open_statement("wechatpay", stream(wechat_bill(rows))))
    assert read_all(open_statement("wechatpay", stream(wechat_bill(rows, bom=False)))) == expected
    assert read_all(open_statement("wechatpay", stream(gzip.compress(wechat_bill(rows))))) == expected
    assert read_all(open_statement("wechatpay", OneWay(wechat_bill(rows)))) == expected  # type: ignore[arg-type]


def test_a_comma_inside_a_quoted_product_name_is_one_cell() -> None:
    [line] = read_all(
        open_statement("wechatpay", stream(wechat_bill([wechat_payment(1) | {"商品名称": "E卡, 100元"}])))
    )
    assert line.description == "E卡, 100元"


def test_lines_come_in_batches_of_the_size_asked_in_file_order() -> None:
    rows = [wechat_payment(n) for n in range(5)]
    batches = list(open_statement("wechatpay", stream(wechat_bill(rows))).batches(2))
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert [line.line_no for batch in batches for line in batch] == [2, 3, 4, 5, 6]


def test_an_empty_day_is_a_bill_with_no_lines() -> None:
    bill = open_statement("wechatpay", stream(wechat_bill([])), account=MERCHANT)
    assert read_all(bill) == []
    assert bill.header.account == MERCHANT


def test_a_revoked_micropay_is_counted_by_the_summary_but_moves_no_money() -> None:
    rows = [wechat_payment(1), wechat_payment(2) | {"交易状态": "REVOKED"}]
    lines = read_all(open_statement("wechatpay", stream(wechat_bill(rows, summary={"应结订单总金额": "19.90"}))))
    assert [line.merchant_ref for line in lines] == ["pt_00000001"]


# --- what the bill must agree with ---------------------------------------------------------------


def rejection(data: bytes, account: str | None = None) -> StatementRejected:
    with pytest.raises(StatementRejected) as caught:
        read_all(open_statement("wechatpay", stream(data), account=account))
    return caught.value


def test_a_summary_count_that_does_not_match_the_rows_is_rejected_on_the_summary_line() -> None:
    error = rejection(wechat_bill([wechat_payment(1), wechat_payment(2)], summary={"总交易单数": "3"}))
    assert error.details == {"line": 5, "column": "总交易单数"}


@pytest.mark.parametrize("total", ["应结订单总金额", "退款总金额", "手续费总金额", "订单总金额", "申请退款总金额"])
def test_a_summary_amount_that_does_not_match_the_rows_is_rejected(total: str) -> None:
    error = rejection(wechat_bill([wechat_payment(1), wechat_refund(2)], summary={total: "12345.67"}))
    assert error.details == {"line": 5, "column": total}


def test_a_row_for_another_merchant_is_rejected_on_its_line() -> None:
    error = rejection(wechat_bill([wechat_payment(1), wechat_payment(2) | {"商户号": "1900000999"}]))
    assert error.details == {"line": 3, "column": "商户号"}


def test_a_bill_for_another_merchant_than_expected_is_rejected_on_its_first_row() -> None:
    error = rejection(wechat_bill([wechat_payment(1)]), account="1900000999")
    assert error.details == {"line": 2, "column": "商户号"}


def test_real_quirks_are_tolerated_values_without_backticks_short_decimals_blank_lines() -> None:
    data = wechat_bill([wechat_payment(1, fen=1000, fee=6), wechat_payment(2)], summary={"应结订单总金额": "29.9"})
    data = data.replace(b"`10.00", b"10.0", 2).replace(b"`0.06", b"0.06")
    data = data.replace(b"\r\n`2026", b"\r\n\r\n`2026", 1)
    lines = read_all(open_statement("wechatpay", stream(data)))
    assert [(line.line_no, line.amount_minor, line.fee_minor) for line in lines] == [(3, 1000, 6), (4, 1990, 12)]


def test_a_line_break_inside_a_quoted_product_name_keeps_line_numbers_true() -> None:
    rows = [wechat_payment(1) | {"商品名称": "第一行\n第二行"}, wechat_payment(2), wechat_payment(3) | {"手续费": "x"}]
    data = wechat_bill(rows, summary={"手续费总金额": "0.24"})
    with pytest.raises(StatementRejected) as caught:
        read_all(open_statement("wechatpay", stream(data)))
    assert caught.value.details == {"line": 5, "column": "手续费"}
    [first, second] = read_all(open_statement("wechatpay", stream(wechat_bill(rows[:2]))))
    assert (first.line_no, first.description, second.line_no) == (2, "第一行\n第二行", 4)


def test_a_bill_longer_than_one_chunk_reads_every_row_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bill.csv"
    write_wechat_bill(path, 40_000, refund_every=7)  # about 10 MB: more than one 8 MB chunk
    with path.open("rb") as bill:
        lines = read_all(open_statement("wechatpay", bill), size=7_000)
    assert len(lines) == 40_000
    assert [line.line_no for line in lines] == list(range(2, 40_002))
    assert sum(line.kind == "refund" for line in lines) == 40_000 // 7


def test_an_empty_cell_without_its_backtick_reads_as_empty_text() -> None:
    data = wechat_bill([wechat_payment(1)]).replace("`京东E卡 100元".encode(), b"")
    [line] = read_all(open_statement("wechatpay", stream(data)))
    assert line.description == ""


def test_a_coupon_makes_the_order_amount_differ_from_the_settled_one_and_both_are_checked() -> None:
    coupon = wechat_payment(1, fen=9_000) | {"订单金额": "100.00", "代金券金额": "10.00"}
    lines = read_all(open_statement("wechatpay", stream(wechat_bill([coupon, wechat_payment(2)]))))
    assert [line.amount_minor for line in lines] == [9_000, 1990]
    with pytest.raises(StatementRejected) as caught:
        read_all(open_statement("wechatpay", stream(wechat_bill([coupon], summary={"订单总金额": "90.00"}))))
    assert caught.value.details == {"line": 4, "column": "订单总金额"}
    bad = coupon | {"订单金额": "1OO.00"}
    with pytest.raises(StatementRejected) as caught:
        read_all(open_statement("wechatpay", stream(wechat_bill([bad]))))
    assert caught.value.details == {"line": 2, "column": "订单金额"}


@pytest.mark.parametrize("chunk_bytes", [64, 300, 1000])
def test_tiny_chunks_split_rows_and_quoted_line_breaks_anywhere_and_read_the_same(
    chunk_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [wechat_payment(n) | {"商品名称": f"第{n}行\n第二行, 逗号"} for n in range(6)] + [wechat_refund(9)]
    data = wechat_bill(rows)
    expected = read_all(open_statement("wechatpay", stream(data)))
    monkeypatch.setattr(columnar, "CHUNK_BYTES", chunk_bytes)
    assert read_all(open_statement("wechatpay", stream(data)), size=2) == expected
    assert [line.line_no for line in expected] == [2, 4, 6, 8, 10, 12, 14]
