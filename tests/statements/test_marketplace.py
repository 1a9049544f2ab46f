"""kaquan's marketplace settlement export read into statement lines, in GBK or UTF-8, given or detected."""

from datetime import UTC, datetime

import pytest
from tests.support.statements import read_all, stream

from kaquan.statements import StatementRejected, open_statement

EXPORT = (
    "结算流水号,订单号,类型,金额(元),佣金(元),发生时间,备注\r\n"
    "S202612050001,TM88001,订单收入,100.00,5.00,2026-12-05 09:15:02,\r\n"
    "S202612050002,TM88001,退款,-100.00,-5.00,2026-12-05 10:00:00,买家申请\r\n"
    "S202612050003,,平台佣金,-3.00,,2026/12/05 23:59:59,\r\n"
    "S202612050004,,结算打款,-92.00,,2026-12-05 23:59:59,\r\n"
)


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (EXPORT.encode("gbk"), "gbk"),
        (EXPORT.encode(), "utf-8"),
        (("\ufeff" + EXPORT).encode(), "utf-8"),
        (EXPORT.encode("gbk"), None),
        (EXPORT.encode(), None),
        (("\ufeff" + EXPORT).encode(), None),
    ],
)
def test_the_export_reads_the_same_in_every_encoding(data: bytes, encoding: str | None) -> None:
    statement = open_statement("marketplace", stream(data), account="tmall", encoding=encoding)
    income, refund, commission, payout = read_all(statement)
    assert (statement.header.source, statement.header.account) == ("marketplace:tmall", "tmall")
    assert (income.kind, income.identity, income.merchant_ref, income.amount_minor, income.fee_minor) == (
        "payment",
        "S202612050001",
        "TM88001",
        10_000,
        500,
    )
    assert income.occurred_at == datetime(2026, 12, 5, 1, 15, 2, tzinfo=UTC)
    assert (refund.kind, refund.amount_minor, refund.fee_minor, refund.status) == ("refund", 10_000, 500, "退款")
    assert (commission.kind, commission.amount_minor, commission.merchant_ref) == ("fee", 300, "")
    assert (payout.kind, payout.amount_minor) == ("payout", 9_200)


def test_a_utf8_export_given_as_gbk_is_rejected_not_mojibaked() -> None:
    with pytest.raises(StatementRejected) as caught:
        read_all(open_statement("marketplace", stream(EXPORT.encode()), encoding="gbk"))
    assert caught.value.details["line"] == 1


def test_a_gbk_export_given_as_utf8_is_rejected_naming_the_first_bad_line() -> None:
    data = (
        "结算流水号,订单号,类型,金额（元）,发生时间\r\n".encode()
        + "S1,TM1,订单收入,1.00,2026-12-05 09:15:02\r\n".encode("gbk")
    )
    with pytest.raises(StatementRejected) as caught:
        read_all(open_statement("marketplace", stream(data), encoding="utf-8"))
    assert caught.value.details["line"] == 2


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("S9,TM9,订单收入,abc,0,2026-12-05 09:15:02", "金额（元）"),
        ("S9,TM9,订单收入,1.00,1.005,2026-12-05 09:15:02", "佣金（元）"),
        ("S9,TM9,红包,1.00,0,2026-12-05 09:15:02", "类型"),
        ("S9,TM9,订单收入,1.00,0,昨天", "发生时间"),
        (",TM9,订单收入,1.00,0,2026-12-05 09:15:02", "结算流水号"),
    ],
)
def test_a_bad_cell_is_rejected_naming_its_line_and_column(row: str, column: str) -> None:
    data = ("结算流水号,订单号,类型,金额（元）,佣金（元）,发生时间\r\n" + row + "\r\n").encode("gbk")
    with pytest.raises(StatementRejected) as caught:
        read_all(open_statement("marketplace", stream(data), encoding="gbk"))
    assert caught.value.details == {"line": 2, "column": column}


def test_a_header_without_the_order_column_is_rejected_naming_it() -> None:
    with pytest.raises(StatementRejected) as caught:
        open_statement("marketplace", stream("结算流水号,类型,金额（元）,发生时间\r\n".encode()), encoding="utf-8")
    assert caught.value.details == {"line": 1, "column": "订单号"}
