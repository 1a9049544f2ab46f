"""Stripe's balance transactions export read into statement lines: kinds by Type, amounts per currency's unit."""

from datetime import UTC, datetime

import pytest
from tests.support.statements import read_all, stream

from kaquan.payments.stripe.protocol import balance_csv
from kaquan.statements import StatementRejected, open_statement

CREATED = int(datetime(2026, 12, 5, 8, 30, tzinfo=UTC).timestamp())


def txn(
    txn_id: str, kind: str, source: dict[str, object] | str, amount: int, fee: int, currency: str = "usd"
) -> dict[str, object]:
    return {
        "id": txn_id,
        "type": kind,
        "source": source,
        "amount": amount,
        "fee": fee,
        "net": amount - fee,
        "currency": currency,
        "created": CREATED,
        "available_on": CREATED + 2 * 86_400,
        "description": "腾讯视频 月卡",
    }


def charge(charge_id: str, token: str) -> dict[str, object]:
    return {"id": charge_id, "metadata": {"payment_token": token, "order_number": "K100"}}


def test_the_simulators_export_reads_with_the_payment_token_as_merchant_ref() -> None:
    export = balance_csv(
        [
            txn("txn_1", "charge", charge("ch_1", "pt_1"), 1990, 88),
            txn("txn_2", "refund", {"id": "re_1", "metadata": {"payment_token": "pt_1", "refund_no": "R1"}}, -1990, 0),
            txn("txn_3", "payout", "po_1", -5000, 0),
            txn("txn_4", "stripe_fee", "", -150, 0),
            txn("txn_5", "adjustment", "", 300, 0),
        ]
    )
    statement = open_statement("stripe", stream(export))
    payment, refund, payout, fee, adjustment = read_all(statement)
    assert statement.header.source == "stripe"
    assert statement.header.currency == "USD"
    assert (payment.kind, payment.identity, payment.merchant_ref, payment.counterparty_ref) == (
        "payment",
        "txn_1",
        "pt_1",
        "ch_1",
    )
    assert (payment.amount_minor, payment.fee_minor, payment.currency) == (1990, 88, "USD")
    assert payment.occurred_at == datetime(2026, 12, 5, 8, 30, tzinfo=UTC)
    assert (refund.kind, refund.amount_minor, refund.merchant_ref, refund.refund_ref) == ("refund", 1990, "pt_1", "")
    assert (payout.kind, payout.amount_minor, payout.counterparty_ref) == ("payout", 5000, "po_1")
    assert (fee.kind, fee.amount_minor, fee.counterparty_ref) == ("fee", 150, "txn_4")
    assert adjustment.kind == "adjustment"


def test_a_zero_decimal_currency_is_whole_yen() -> None:
    export = balance_csv([txn("txn_1", "charge", charge("ch_1", "pt_1"), 1000, 36, currency="jpy")])
    [line] = read_all(open_statement("stripe", stream(export)))
    assert (line.amount_minor, line.fee_minor, line.currency) == (1000, 36, "JPY")


def test_a_zero_decimal_amount_printed_with_zero_cents_is_still_whole_yen() -> None:
    export = (
        "id,Type,Source,Amount,Fee,Net,Currency,Created (UTC)\n"
        "txn_1,charge,ch_1,1000.00,36.00,964.00,jpy,2026-12-05 08:30:00\n"
    )
    [line] = read_all(open_statement("stripe", stream(export.encode())))
    assert (line.amount_minor, line.fee_minor) == (1000, 36)


def test_yen_with_real_cents_is_rejected() -> None:
    export = (
        "id,Type,Source,Amount,Fee,Net,Currency,Created (UTC)\n"
        "txn_1,charge,ch_1,1000.50,0,1000.50,jpy,2026-12-05 08:30\n"
    )
    with pytest.raises(StatementRejected) as caught:
        read_all(open_statement("stripe", stream(export.encode())))
    assert caught.value.details == {"line": 2, "column": "Amount"}


API_REPORT = (
    "balance_transaction_id,created_utc,available_on_utc,currency,gross,fee,net,reporting_category,source_id,"
    "description,payment_metadata[payment_token],refund_metadata[refund_no]\n"
    "txn_9,2026-12-05T08:30:00Z,2026-12-07T00:00:00Z,eur,19.90,0.60,19.30,charge,ch_9,,pt_9,\n"
    "txn_10,2026-12-05T09:00:00Z,2026-12-07T00:00:00Z,eur,-19.90,0.00,-19.90,refund,re_9,,pt_9,R9\n"
)


def test_the_api_balance_report_names_are_read_too() -> None:
    payment, refund = read_all(open_statement("stripe", stream(API_REPORT.encode())))
    assert (payment.identity, payment.merchant_ref, payment.amount_minor, payment.fee_minor) == (
        "txn_9",
        "pt_9",
        1990,
        60,
    )
    assert (refund.kind, refund.refund_ref, refund.amount_minor) == ("refund", "R9", 1990)
    assert refund.occurred_at == datetime(2026, 12, 5, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("txn_1,charge,ch_1,19.9.0,0.00,19.90,usd,2026-12-05 08:30", "Amount"),
        ("txn_1,charge,ch_1,19.90,abc,19.90,usd,2026-12-05 08:30", "Fee"),
        ("txn_1,charge,ch_1,19.90,0.50,19.90,usd,2026-12-05 08:30", "Net"),
        ("txn_1,charge,ch_1,19.90,0.00,19.90,xyz,2026-12-05 08:30", "Currency"),
        ("txn_1,charge,ch_1,19.90,0.00,19.90,usd,05/12/2026 08:30", "Created (UTC)"),
        (",charge,ch_1,19.90,0.00,19.90,usd,2026-12-05 08:30", "id"),
    ],
)
def test_a_bad_cell_is_rejected_naming_the_column_as_printed(row: str, column: str) -> None:
    export = (
        "id,Type,Source,Amount,Fee,Net,Currency,Created (UTC)\ntxn_0,charge,ch_0,1.00,0.00,1.00,usd,2026-12-05 08:00\n"
    )
    with pytest.raises(StatementRejected) as caught:
        read_all(open_statement("stripe", stream((export + row + "\n").encode())))
    assert caught.value.details == {"line": 3, "column": column}


def test_a_header_without_amount_is_rejected_naming_it() -> None:
    with pytest.raises(StatementRejected) as caught:
        open_statement("stripe", stream(b"id,Type,Fee,Currency,Created (UTC)\n"))
    assert caught.value.details == {"line": 1, "column": "amount"}
