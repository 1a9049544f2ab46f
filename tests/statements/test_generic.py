"""Any CSV or XLSX read through the column mapping finance saved for its source."""

import io
import json
from datetime import UTC, datetime

import pytest
from openpyxl import Workbook
from tests.support.statements import OneWay, read_all, stream

from kaquan.statements import ColumnMapping, MappingInvalid, StatementRejected, open_statement

BANK = ColumnMapping(
    name="bank-cmb",
    identity="流水号",
    merchant_ref="订单号",
    amount="金额",
    occurred_at="交易时间",
    fee="手续费",
    description="摘要",
)


def xlsx(rows: list[list[object]], *, blank_rows_before: int = 0, title: str = "明细") -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    for _ in range(blank_rows_before):
        sheet.append([])
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_a_csv_reads_through_the_mapping_with_negative_amounts_as_refunds() -> None:
    text = (
        "流水号,订单号,金额,手续费,交易时间,摘要\n"
        "B1,pt_1,19.90,0.12,2026-12-05 09:15:02,收款\n"
        "B2,pt_1,-19.90,-0.12,2026-12-05 10:00:00,退款\n"
    )
    statement = open_statement("generic", stream(text.encode()), mapping=BANK)
    payment, refund = read_all(statement)
    assert (statement.header.source, statement.header.currency) == ("generic:bank-cmb", "CNY")
    assert (payment.kind, payment.identity, payment.merchant_ref, payment.amount_minor, payment.fee_minor) == (
        "payment",
        "B1",
        "pt_1",
        1990,
        12,
    )
    assert payment.occurred_at == datetime(2026, 12, 5, 1, 15, 2, tzinfo=UTC)
    assert payment.description == "收款"
    assert (refund.kind, refund.amount_minor, refund.fee_minor) == ("refund", 1990, 12)


def test_a_kind_column_with_its_value_table_fen_amounts_iso_times_and_a_later_header_row() -> None:
    mapping = ColumnMapping(
        name="psp",
        identity="id",
        merchant_ref="ref",
        amount="cents",
        occurred_at="at",
        kind="what",
        kinds={"SALE": "payment", "REFUND": "refund", "SETTLE": "payout"},
        currency="ccy",
        amount_unit="fen",
        date_format="iso",
        time_zone="UTC",
        encoding="gbk",
        header_row=3,
    )
    text = (
        "报表：某支付机构\n导出于 2026-12-06\nid,ref,cents,at,what,ccy\n"
        "P1,pt_1,1990,2026-12-05T09:15:02,SALE,usd\n"
        "P2,,5000,2026-12-05T23:00:00+08:00,SETTLE,cny\n"
    )
    sale, settle = read_all(open_statement("generic", stream(text.encode("gbk")), mapping=mapping))
    assert (sale.kind, sale.amount_minor, sale.currency, sale.status, sale.line_no) == (
        "payment",
        1990,
        "USD",
        "SALE",
        4,
    )
    assert sale.occurred_at == datetime(2026, 12, 5, 9, 15, 2, tzinfo=UTC)
    assert (settle.kind, settle.amount_minor, settle.currency) == ("payout", 5000, "CNY")
    assert settle.occurred_at == datetime(2026, 12, 5, 15, 0, tzinfo=UTC)


def test_an_xlsx_reads_typed_cells_and_reports_sheet_rows() -> None:
    rows: list[list[object]] = [
        ["流水号", "订单号", "金额", "手续费", "交易时间", "摘要"],
        [2026120512345, "pt_1", 19.9, 0.12, datetime(2026, 12, 5, 9, 15, 2), "收款"],  # noqa: DTZ001 - a sheet's wall-clock time
        [],
        ["B2", "pt_2", "1,234.50", 0, "2026-12-05 10:00:00", None],
    ]
    data = xlsx(rows, blank_rows_before=1)
    mapping = ColumnMapping(**{**json.loads(BANK.to_json()), "header_row": 2})
    first, second = read_all(open_statement("generic", stream(data), mapping=mapping))
    assert (first.line_no, first.identity, first.amount_minor, first.fee_minor) == (
        3,
        "2026120512345",
        1990,
        12,
    )
    assert first.occurred_at == datetime(2026, 12, 5, 1, 15, 2, tzinfo=UTC)
    assert (second.line_no, second.amount_minor, second.description) == (5, 123_450, "")
    assert read_all(open_statement("generic", OneWay(data), mapping=mapping)) == [first, second]  # type: ignore[arg-type]


def test_an_xlsx_amount_with_three_decimals_is_rejected_on_its_sheet_row() -> None:
    data = xlsx(
        [["流水号", "订单号", "金额", "手续费", "交易时间", "摘要"], ["B1", "pt", 12.345, 0, "2026-12-05 09:00:00", ""]]
    )
    with pytest.raises(StatementRejected) as caught:
        read_all(open_statement("generic", stream(data), mapping=BANK))
    assert caught.value.details == {"line": 2, "column": "金额"}


def test_a_named_sheet_is_read_and_a_missing_one_is_rejected() -> None:
    data = xlsx(
        [["流水号", "订单号", "金额", "手续费", "交易时间", "摘要"], ["B1", "pt", 1, 0, "2026-12-05 09:00:00", ""]],
        title="对账",
    )
    mapping = ColumnMapping(**{**json.loads(BANK.to_json()), "sheet": "对账"})
    assert len(read_all(open_statement("generic", stream(data), mapping=mapping))) == 1
    with pytest.raises(StatementRejected, match="no sheet"):
        open_statement(
            "generic", stream(data), mapping=ColumnMapping(**{**json.loads(BANK.to_json()), "sheet": "别的"})
        )


@pytest.mark.parametrize("data", [b"PK\x03\x04 not really a zip", b"PK\x03\x04" + b"\x00" * 200])
def test_a_file_that_looks_like_xlsx_but_is_not_is_rejected(data: bytes) -> None:
    with pytest.raises(StatementRejected, match="not an XLSX"):
        open_statement("generic", stream(data), mapping=BANK)


def test_a_zip_that_is_not_a_workbook_is_rejected() -> None:
    import zipfile

    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(StatementRejected, match="not an XLSX"):
        open_statement("generic", stream(packed.getvalue()), mapping=BANK)


def test_without_a_kind_column_a_negative_amount_is_refused_when_the_mapping_says_so() -> None:
    mapping = ColumnMapping(**{**json.loads(BANK.to_json()), "negative_is_refund": False})
    text = "流水号,订单号,金额,手续费,交易时间,摘要\nB1,pt_1,-19.90,0,2026-12-05 09:15:02,\n"
    with pytest.raises(StatementRejected) as caught:
        read_all(open_statement("generic", stream(text.encode()), mapping=mapping))
    assert caught.value.details == {"line": 2, "column": "金额"}


def test_a_kind_value_the_table_does_not_know_is_rejected() -> None:
    mapping = ColumnMapping(**{**json.loads(BANK.to_json()), "kind": "类型", "kinds": {"收款": "payment"}})
    text = "流水号,订单号,金额,手续费,交易时间,摘要,类型\nB1,pt_1,1.00,0,2026-12-05 09:15:02,,冲正\n"
    with pytest.raises(StatementRejected) as caught:
        read_all(open_statement("generic", stream(text.encode()), mapping=mapping))
    assert caught.value.details == {"line": 2, "column": "类型"}


def test_a_generic_statement_needs_a_mapping() -> None:
    with pytest.raises(StatementRejected, match="mapping"):
        open_statement("generic", stream(b"a,b\n"))


# --- the mapping itself --------------------------------------------------------------------------


def test_a_mapping_survives_json() -> None:
    mapping = ColumnMapping(
        name="psp", identity="id", merchant_ref="ref", amount="a", occurred_at="t", kind="k", kinds={"S": "payment"}
    )
    assert ColumnMapping.from_json(mapping.to_json()) == mapping
    assert json.loads(mapping.to_json())["kinds"] == {"S": "payment"}


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"colour": "red"}, "colour"),
        ({"amount": None}, "amount"),
        ({"identity": ""}, "identity"),
        ({"kind": "类型"}, "kinds"),
        ({"kind": "类型", "kinds": {"收款": "sale"}}, "kinds"),
        ({"amount_unit": "jiao"}, "amount_unit"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"encoding": "klingon"}, "encoding"),
        ({"header_row": 0}, "header_row"),
        ({"date_format": "YYYY-MM-DD"}, "date_format"),
        ({"default_currency": "XYZ"}, "default_currency"),
        ({"fee": ""}, "fee"),
    ],
)
def test_a_mapping_that_cannot_read_anything_is_refused_naming_the_key(change: dict[str, object], key: str) -> None:
    data = {**json.loads(BANK.to_json()), **change}
    with pytest.raises(MappingInvalid) as caught:
        ColumnMapping.from_json(json.dumps(data))
    assert caught.value.details == {"key": key}


def test_a_mapping_without_a_required_column_name_is_refused() -> None:
    data = json.loads(BANK.to_json())
    del data["merchant_ref"]
    with pytest.raises(MappingInvalid) as caught:
        ColumnMapping.from_json(json.dumps(data))
    assert caught.value.details == {"key": "merchant_ref"}


def test_a_file_without_a_mapped_column_is_rejected_naming_it() -> None:
    with pytest.raises(StatementRejected) as caught:
        open_statement("generic", stream("流水号,订单号,金额,交易时间\n".encode()), mapping=BANK)
    assert caught.value.details == {"line": 1, "column": "手续费"}
