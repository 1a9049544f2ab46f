"""An agent's own statement read into statement lines: delivered orders are payments, refunded ones refunds."""

from datetime import UTC, datetime

import pytest
from tests.support.statements import read_all, stream

from kaquan.statements import StatementRejected, open_statement

HEADER = "out_order_no,order_no,sku,quantity,amount,created_at,status\n"


def test_delivered_and_refunded_orders_read_with_both_order_numbers() -> None:
    text = (
        HEADER
        + "A-1001,K20261205000001,JD-ECARD-100,2,200.00,2026-12-05 09:15:02,delivered\n"
        + "A-1001,K20261205000001,JD-ECARD-100,2,200.00,2026-12-05T11:00:00+08:00,refunded\n"
    )
    statement = open_statement("agent", stream(("\ufeff" + text).encode()), account="ag-north")
    delivered, refunded = read_all(statement)
    assert (statement.header.source, statement.header.account) == ("agent:ag-north", "ag-north")
    assert (delivered.kind, delivered.identity, delivered.merchant_ref, delivered.counterparty_ref) == (
        "payment",
        "order:K20261205000001",
        "A-1001",
        "K20261205000001",
    )
    assert (delivered.amount_minor, delivered.fee_minor, delivered.currency) == (20_000, 0, "CNY")
    assert delivered.occurred_at == datetime(2026, 12, 5, 1, 15, 2, tzinfo=UTC)  # Asia/Shanghai without an offset
    assert delivered.description == "JD-ECARD-100 ×2"
    assert (refunded.kind, refunded.identity) == ("refund", "refund:K20261205000001")
    assert refunded.occurred_at == datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


def test_columns_in_another_order_with_extras_read_the_same() -> None:
    text = (
        "status,note,created_at,amount,quantity,sku,order_no,out_order_no\n"
        "delivered,x,2026-12-05 09:15:02,9.9,1,S,K1,A1\n"
    )
    [line] = read_all(open_statement("agent", stream(text.encode())))
    assert (line.merchant_ref, line.counterparty_ref, line.amount_minor) == ("A1", "K1", 990)


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("A1,K1,S,1,12.3.4,2026-12-05 09:15:02,delivered", "amount"),
        ("A1,K1,S,1,,2026-12-05 09:15:02,delivered", "amount"),
        ("A1,K1,S,1,1.001,2026-12-05 09:15:02,delivered", "amount"),
        ("A1,K1,S,1,-1.00,2026-12-05 09:15:02,delivered", "amount"),
        ("A1,K1,S,0,1.00,2026-12-05 09:15:02,delivered", "quantity"),
        ("A1,K1,S,1,1.00,2026-12-05,delivered", "created_at"),
        ("A1,K1,S,1,1.00,5 Dec 2026,delivered", "created_at"),
        ("A1,K1,S,1,1.00,2026-12-05 09:15:02,cancelled", "status"),
        ("A1,,S,1,1.00,2026-12-05 09:15:02,delivered", "order_no"),
    ],
)
def test_a_bad_cell_is_rejected_naming_its_line_and_column(row: str, column: str) -> None:
    text = HEADER + "A0,K0,S,1,1.00,2026-12-05 09:00:00,delivered\n" + row + "\n"
    with pytest.raises(StatementRejected) as caught:
        read_all(open_statement("agent", stream(text.encode())))
    assert caught.value.details == {"line": 3, "column": column}


def test_a_header_without_status_is_rejected_naming_it() -> None:
    with pytest.raises(StatementRejected) as caught:
        open_statement("agent", stream(b"out_order_no,order_no,sku,quantity,amount,created_at\n"))
    assert caught.value.details == {"line": 1, "column": "status"}
