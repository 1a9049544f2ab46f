"""Alipay's 业务明细 read into statement lines: the CSV or Alipay's zip, GBK, framed by `#` lines, totals checked."""

import io
import zipfile
from datetime import UTC, date, datetime

import pytest
from tests.support.statements import OneWay, read_all, stream

from kaquan.payments.alipay.bill import BillLine, write_bill
from kaquan.statements import StatementRejected, open_statement

ACCOUNT = "20881234567890120156"
AT = datetime(2026, 12, 5, 3, 4, 5, tzinfo=UTC)
TRADE = "2026120522001400001234567890"


def simulated_zip(lines: list[BillLine] | None = None) -> bytes:
    lines = (
        lines
        if lines is not None
        else [
            BillLine(TRADE, "pt_1", "交易", "京东E卡", AT, AT, "a***@x.com", 1990, 1990, "", -12),
            BillLine(TRADE, "pt_1", "退款", "京东E卡", AT, AT, "a***@x.com", 1990, -1000, "rf_1", 6),
        ]
    )
    return write_bill(ACCOUNT, date(2026, 12, 5), lines, exported_at=AT)


def detail_csv(archive: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        [name] = [name for name in opened.namelist() if name.endswith("_业务明细.csv")]
        return opened.read(name)


def test_the_simulators_zip_reads_as_a_payment_and_a_partial_refund() -> None:
    detail = open_statement("alipay", stream(simulated_zip()), account=ACCOUNT)
    payment, refund = read_all(detail)
    assert detail.header.source == "alipay"
    assert detail.header.account == ACCOUNT
    assert (detail.header.period_start, detail.header.period_end) == (date(2026, 12, 5), date(2026, 12, 5))
    assert payment.kind == "payment"
    assert payment.identity == f"pay:{TRADE}"
    assert (payment.merchant_ref, payment.counterparty_ref) == ("pt_1", TRADE)
    assert (payment.amount_minor, payment.fee_minor, payment.currency) == (1990, 12, "CNY")
    assert payment.occurred_at == AT
    assert payment.line_no == 6
    assert refund.kind == "refund"
    assert refund.identity == f"refund:{TRADE}:rf_1"
    assert (refund.refund_ref, refund.amount_minor, refund.fee_minor) == ("rf_1", 1000, 6)


def test_the_csv_alone_and_a_one_way_stream_read_the_same_as_the_zip() -> None:
    from_zip = read_all(open_statement("alipay", stream(simulated_zip())))
    assert read_all(open_statement("alipay", stream(detail_csv(simulated_zip())))) == from_zip
    assert read_all(open_statement("alipay", OneWay(simulated_zip()))) == from_zip  # type: ignore[arg-type]


# As Alipay's own export pads it: spaces around cells, tabs after ids, a summary member beside the details.
REAL_DETAIL = (
    "#支付宝业务明细查询\r\n"
    "#账号：[20881234567890120156]\r\n"
    "#起始日期：[2026年12月05日 00:00:00]   终止日期：[2026年12月06日 00:00:00]\r\n"
    "#-----------------------------------------业务明细列表----------------------------------------\r\n"
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,"
    "订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,"
    "券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注\r\n"
    "2026120522001400001234567890\t,pt_a1\t,交易      ,京东E卡 100元 ,2026-12-05 09:15:01,2026-12-05 09:15:02,,,,,"
    "a***@example.com,100.00,100.00,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,,-0.60,0.00,\r\n"
    "2026120522001400001234567890\t,pt_a1\t,退款      ,京东E卡 100元 ,2026-12-05 09:15:01,2026-12-05 11:00:00,,,,,"
    "a***@example.com,100.00,-100.00,0.00,0.00,0.00,0.00,0.00,,0.00,0.00,rf_a1\t,0.60,0.00,\r\n"
    "#-----------------------------------------业务明细列表结束------------------------------------\r\n"
    "#交易合计：1笔，商家实收：100.00元，商家实收退款：-100.00元，服务费：-0.60元，服务费退款：0.60元\r\n"
    "#退款合计：1笔\r\n"
    "#导出时间：[2026年12月06日 09:00:12]\r\n"
)


class GbkName(zipfile.ZipInfo):
    """A member named in GBK bytes without zip's UTF-8 flag, as Alipay's zips are (Python would write UTF-8)."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode("cp437"), self.flag_bits


def gbk_zip(members: dict[str, bytes]) -> bytes:
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(GbkName(name.encode("gbk").decode("cp437"), date_time=(2026, 12, 6, 9, 0, 12)), data)
    with zipfile.ZipFile(io.BytesIO(packed.getvalue())) as written:
        assert not any(info.flag_bits & 0x800 for info in written.infolist())
    return packed.getvalue()


def test_a_real_export_with_padding_tabs_and_gbk_member_names_reads() -> None:
    archive = gbk_zip(
        {
            "20881234567890120156_20261205_业务明细(汇总).csv": "#支付宝业务汇总查询\r\n".encode("gbk"),
            "20881234567890120156_20261205_业务明细.csv": REAL_DETAIL.encode("gbk"),
        }
    )
    payment, refund = read_all(open_statement("alipay", stream(archive)))
    assert (payment.merchant_ref, payment.counterparty_ref, payment.status) == ("pt_a1", TRADE, "交易")
    assert (payment.amount_minor, payment.fee_minor, payment.description) == (10_000, 60, "京东E卡 100元")
    assert (refund.refund_ref, refund.amount_minor, refund.fee_minor) == ("rf_a1", 10_000, 60)
    assert refund.occurred_at == datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


def rejection(data: bytes, account: str | None = None) -> StatementRejected:
    with pytest.raises(StatementRejected) as caught:
        read_all(open_statement("alipay", stream(data), account=account))
    return caught.value


def test_a_file_for_another_account_is_rejected_on_the_account_line() -> None:
    error = rejection(REAL_DETAIL.encode("gbk"), account="20889999999999990156")
    assert error.details == {"line": 2, "column": "账号"}


@pytest.mark.parametrize(
    ("printed", "column"),
    [
        ("#交易合计：2笔，", "交易合计"),
        ("商家实收：100.01元", "商家实收"),
        ("商家实收退款：-99.00元", "商家实收退款"),
        ("服务费：-0.61元", "服务费"),
        ("服务费退款：0.00元", "服务费退款"),
    ],
)
def test_totals_that_do_not_match_the_rows_are_rejected_on_the_totals_line(printed: str, column: str) -> None:
    original = {
        "交易合计": "#交易合计：1笔，",
        "商家实收": "商家实收：100.00元",
        "商家实收退款": "商家实收退款：-100.00元",
        "服务费": "服务费：-0.60元",
        "服务费退款": "服务费退款：0.60元",
    }[column]
    error = rejection(REAL_DETAIL.replace(original, printed, 1).encode("gbk"))
    assert error.details == {"line": 9, "column": column}


def test_a_refund_count_that_does_not_match_is_rejected() -> None:
    error = rejection(REAL_DETAIL.replace("#退款合计：1笔", "#退款合计：2笔").encode("gbk"))
    assert error.details == {"line": 10, "column": "退款合计"}


def test_a_file_cut_before_its_totals_is_rejected_as_truncated() -> None:
    cut = REAL_DETAIL[: REAL_DETAIL.index("#---", 300)]
    error = rejection(cut.encode("gbk"))
    assert "truncated" in error.message


def test_a_zip_without_a_detail_member_is_rejected() -> None:
    error = rejection(gbk_zip({"20881234567890120156_20261205_业务明细(汇总).csv": b"#"}))
    assert "0 业务明细" in error.message


def test_an_unknown_business_type_is_rejected_naming_the_column() -> None:
    error = rejection(REAL_DETAIL.replace("退款      ,", "转账,").encode("gbk"))
    assert error.details == {"line": 7, "column": "业务类型"}


def test_empty_cells_read_as_empty_text() -> None:
    data = REAL_DETAIL.replace("京东E卡 100元 ,", ",", 1).encode("gbk")
    payment, _ = read_all(open_statement("alipay", stream(data)))
    assert payment.description == ""


def test_a_refund_row_without_its_request_number_is_rejected() -> None:
    data = REAL_DETAIL.replace("rf_a1\t,", ",").encode("gbk")
    error = rejection(data)
    assert error.details == {"line": 7, "column": "退款批次号/请求号"}


def test_a_row_cut_short_is_rejected_on_its_line() -> None:
    lines = REAL_DETAIL.split("\r\n")
    lines[5] = lines[5][:60]
    error = rejection("\r\n".join(lines).encode("gbk"))
    assert error.details["line"] == 6


@pytest.mark.parametrize(
    ("old", "new", "column"),
    [
        (",100.00,100.00,", ",1OO.00,100.00,", "订单金额（元）"),
        ("-0.60", "-0.6.0", "服务费（元）"),
        ("2026-12-05 09:15:02", "2026-12-05 25:15:02", "完成时间"),
    ],
)
def test_a_cell_that_does_not_parse_is_rejected_naming_its_column(old: str, new: str, column: str) -> None:
    error = rejection(REAL_DETAIL.replace(old, new, 1).encode("gbk"))
    assert error.details == {"line": 6, "column": column}
