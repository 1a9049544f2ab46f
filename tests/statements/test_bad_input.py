"""A file that is not the statement it claims to be is rejected whole, naming the line and the column."""

import pytest
from tests.support.statements import WECHAT_ALL, read_all, stream, wechat_bill, wechat_payment, wechat_refund

from kaquan.statements import StatementRejected, open_statement


def rejected(kind: str, data: bytes, *, account: str | None = None) -> StatementRejected:
    with pytest.raises(StatementRejected) as caught:
        read_all(open_statement(kind, stream(data), account=account))
    return caught.value


def three_rows() -> list[dict[str, str]]:
    return [wechat_payment(1), wechat_payment(2), wechat_refund(3)]


# --- encoding ------------------------------------------------------------------------------------


def test_a_gbk_file_given_as_a_wechat_bill_is_rejected_at_its_first_chinese_line() -> None:
    text = wechat_bill(three_rows(), bom=False).decode()
    error = rejected("wechatpay", text.encode("gbk"))
    assert error.details["line"] == 1
    assert "not utf-8" in error.message


def test_a_gbk_cell_deep_in_a_utf8_bill_is_rejected_on_its_line() -> None:
    rows = three_rows()
    rows[1] = rows[1] | {"商品名称": "MARK"}
    data = wechat_bill(rows).replace(b"MARK", "京东E卡".encode("gbk"))
    error = rejected("wechatpay", data)
    assert error.details["line"] == 3


def test_a_utf8_file_given_as_an_alipay_detail_is_rejected_not_mojibaked() -> None:
    data = "#支付宝业务明细查询\r\n#账号：[2088]\r\n支付宝交易号,商户订单号\r\n".encode()
    error = rejected("alipay", data)
    assert error.details["line"] == 1
    assert "UTF-8" in error.message


def test_an_alipay_detail_with_a_byte_gbk_cannot_decode_is_rejected_on_its_line() -> None:
    data = "#支付宝业务明细查询\r\n#账号：[2088]\r\n".encode("gbk") + b"\xff\xff,x\r\n"
    assert rejected("alipay", data).details["line"] == 3


# --- truncated files -----------------------------------------------------------------------------


def test_a_wechat_bill_without_its_summary_rows_is_rejected_as_truncated() -> None:
    data = wechat_bill(three_rows())
    cut = data[: data.index("总交易单数".encode())]
    error = rejected("wechatpay", cut)
    assert "truncated" in error.message


def test_a_wechat_bill_without_its_summary_values_is_rejected() -> None:
    data = wechat_bill(three_rows())
    cut = data[: data.rindex(b"\r\n", 0, len(data) - 2) + 2]
    assert rejected("wechatpay", cut).details["line"] == 5


def test_a_wechat_bill_cut_in_the_middle_of_a_row_is_rejected_on_that_row() -> None:
    data = wechat_bill(three_rows())
    third = data.index(b"\r\n`", data.index(b"\r\n`") + 1) + 2
    cut = data[: third + 40]
    error = rejected("wechatpay", cut)
    assert error.details["line"] == 3
    assert "columns" in error.message


def test_a_wechat_bill_cut_inside_a_multibyte_character_is_rejected_on_that_line() -> None:
    data = wechat_bill(three_rows())
    cut = data[: data.index("京东".encode(), data.index(b"\r\n`") + 1) + 1]
    assert rejected("wechatpay", cut).details["line"] == 2


def test_rows_after_the_summary_are_rejected() -> None:
    data = wechat_bill(three_rows()) + b"`2026-12-05 09:15:02,`x\r\n"
    assert rejected("wechatpay", data).details["line"] == 7


# --- cells ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["12.3.4", "abc", "1.234", "", "1e3", "+1.00", "１.00", " 1.00", "--1.00"])
def test_an_amount_that_does_not_parse_is_rejected_naming_its_line_and_column(text: str) -> None:
    rows = three_rows()
    rows[1] = rows[1] | {"应结订单金额": text}
    error = rejected("wechatpay", wechat_bill(rows, summary={"应结订单总金额": "0.00", "订单总金额": "0.00"}))
    assert error.details == {"line": 3, "column": "应结订单金额"}


@pytest.mark.parametrize("text", ["2026-13-05 09:15:02", "2026/12/05 09:15:02", "yesterday", "", "2026-12-05"])
def test_a_time_that_does_not_parse_is_rejected_naming_its_line_and_column(text: str) -> None:
    rows = three_rows()
    rows[2] = rows[2] | {"交易时间": text}
    assert rejected("wechatpay", wechat_bill(rows)).details == {"line": 4, "column": "交易时间"}


def test_an_unknown_trade_state_is_rejected() -> None:
    rows = three_rows()
    rows[0] = rows[0] | {"交易状态": "CLOSED"}
    assert rejected("wechatpay", wechat_bill(rows)).details == {"line": 2, "column": "交易状态"}


# --- headers and not-a-bill ----------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["商户订单号", "手续费", "应结订单金额", "商户号"])
def test_a_header_without_a_required_column_is_rejected_naming_it(missing: str) -> None:
    columns = [name for name in WECHAT_ALL if name != missing]
    error = rejected("wechatpay", wechat_bill(three_rows(), columns=columns))
    assert error.details == {"line": 1, "column": missing}
    assert missing in error.message


def test_a_refund_row_in_a_bill_without_refund_columns_is_rejected() -> None:
    columns = [name for name in WECHAT_ALL if name != "微信退款单号"]
    assert rejected("wechatpay", wechat_bill(three_rows(), columns=columns)).details == {
        "line": 4,
        "column": "微信退款单号",
    }


@pytest.mark.parametrize("kind", ["wechatpay", "alipay"])
@pytest.mark.parametrize("data", [b"", b"\r\n\r\n"])
def test_an_empty_file_is_rejected(kind: str, data: bytes) -> None:
    assert "empty" in rejected(kind, data).message


def test_a_wechat_bill_of_just_a_bom_is_empty() -> None:
    assert "empty" in rejected("wechatpay", b"\xef\xbb\xbf").message


def test_an_alipay_detail_given_as_a_wechat_bill_is_rejected_on_its_first_line() -> None:
    data = "#支付宝业务明细查询\r\n".encode()
    assert "not a WeChat Pay trade bill" in rejected("wechatpay", data).message


def test_an_unknown_kind_is_rejected() -> None:
    assert "unknown statement kind" in rejected("paypal", b"x").message


def test_a_non_utf8_byte_in_a_column_kaquan_does_not_read_still_rejects_the_bill() -> None:
    rows = three_rows()
    rows[2] = rows[2] | {"商户数据包": "MARK"}
    data = wechat_bill(rows).replace(b"MARK", "数据".encode("gbk"))
    assert rejected("wechatpay", data).details["line"] == 4


@pytest.mark.parametrize("kind", ["stripe", "agent", "marketplace"])
def test_an_empty_file_of_the_row_formats_is_rejected(kind: str) -> None:
    assert "empty" in rejected(kind, b"").message


@pytest.mark.parametrize("kind", ["stripe", "agent"])
def test_a_gbk_file_where_utf8_is_expected_is_rejected_at_its_line(kind: str) -> None:
    assert rejected(kind, "id,状态\n".encode("gbk")).details["line"] == 1


def test_a_row_cut_short_is_rejected_on_its_line() -> None:
    data = (
        b"out_order_no,order_no,sku,quantity,amount,created_at,status\n"
        b"A1,K1,S,1,1.00,2026-12-05 09:00:00,delivered\nA2,K2,S"
    )
    error = rejected("agent", data)
    assert error.details["line"] == 3
    assert "columns" in error.message


def test_a_wechat_bill_of_only_its_header_is_truncated_after_line_one() -> None:
    data = wechat_bill([])
    cut = data[: data.index(b"\r\n") + 2]
    error = rejected("wechatpay", cut)
    assert error.details["line"] == 1
    assert "truncated" in error.message
