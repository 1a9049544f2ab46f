"""Stripe's balance transactions export (Balance → Export, or the balance report CSV).

One row per balance transaction: `id` (txn_…), `Type`, `Source` (ch_…, re_…,
po_…), `Amount`, `Fee`, `Net` in the currency's major units as Stripe prints
them ("19.90"; "1000" for a zero-decimal currency like JPY), `Currency` (lower
case), `Created (UTC)`, and one `<key> (metadata)` column per metadata key.
kaquan's gateway puts its payment token in the metadata of every Checkout
Session, PaymentIntent and Refund (`payment_token`) and its refund number in a
Refund's (`refund_no`): those columns are the merchant reference. Header names
are matched without regard to case, and the API report's names (`balance_transaction_id`,
`reporting_category`, `gross`, `created_utc`, `payment_metadata[payment_token]`…) are accepted too.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import IO, Final

from kaquan.statements.lines import LineKind, StatementHeader, StatementLine, StatementRejected
from kaquan.statements.reading import Columns, Rows, currency_of, minor_units, text_lines
from kaquan.statements.rowwise import RowStatement, first_record

SOURCE: Final = "stripe"
# kaquan's name for a column -> the names Stripe's exports use for it (lower case)
ALIASES: Final = {
    "id": ("id", "balance_transaction_id"),
    "type": ("type", "reporting_category"),
    "source": ("source", "source_id"),
    "amount": ("amount", "gross"),
    "fee": ("fee",),
    "net": ("net",),
    "currency": ("currency",),
    "created": ("created (utc)", "created_utc", "created"),
    "description": ("description",),
    "payment_token": ("payment_token (metadata)", "payment_metadata[payment_token]", "metadata[payment_token]"),
    "refund_no": ("refund_no (metadata)", "refund_metadata[refund_no]", "metadata[refund_no]"),
}
REQUIRED: Final = ("id", "type", "amount", "fee", "currency", "created")
KINDS: Final[dict[str, LineKind]] = {
    "charge": "payment",
    "payment": "payment",
    "refund": "refund",
    "payment_refund": "refund",
    "payout": "payout",
}


def read(stream: IO[bytes]) -> RowStatement:
    records = iter(Rows(text_lines(stream, "utf-8")))
    line, cells = first_record(records, "a Stripe balance export")
    lowered = [cell.strip().lower() for cell in cells]
    names = [_kaquan_name(name) for name in lowered]
    if "id" not in names or ("type" not in names and "amount" not in names):
        raise StatementRejected("the file is not a Stripe balance transactions export", line=line)
    columns = Columns(names, line=line, required=REQUIRED, what="Stripe balance export")
    column = {name: columns.optional(name) for name in ALIASES}
    printed = {name: cells[index].strip() for name, index in column.items() if index is not None}
    first = next(records, None)
    currency = ""
    if first is not None:
        currency = currency_of(first[1][columns.index("currency")], line=first[0], column=printed["currency"])[0]
    header = StatementHeader(source=SOURCE, account="", period_start=None, period_end=None, currency=currency)

    def cell(cells: list[str], name: str) -> str:
        index = column[name]
        return cells[index].strip() if index is not None else ""

    def money(cells: list[str], name: str, digits: int, line: int) -> int:
        text = cell(cells, name)
        value = minor_units(_trimmed(text), digits)
        if value is None:
            raise StatementRejected(
                f"{text!r} is not an amount with at most {digits} decimals", line=line, column=printed[name]
            )
        return value

    def convert(line: int, cells: list[str]) -> StatementLine:
        code, digits = currency_of(cell(cells, "currency"), line=line, column=printed["currency"])
        gross = money(cells, "amount", digits, line)
        fee = money(cells, "fee", digits, line)
        if column["net"] is not None and money(cells, "net", digits, line) != gross - fee:
            raise StatementRejected("Net is not Amount minus Fee", line=line, column=printed["net"])
        txn_type = cell(cells, "type")
        kind = KINDS.get(txn_type.lower(), "fee" if "fee" in txn_type.lower() else "adjustment")
        identity = cell(cells, "id")
        if not identity:
            raise StatementRejected("a balance transaction without its id", line=line, column=printed["id"])
        return StatementLine(
            line,
            identity,
            kind,
            _created(cell(cells, "created"), line, printed["created"]),
            abs(gross),
            abs(fee),
            code,
            cell(cells, "payment_token"),
            cell(cells, "source") or identity,
            cell(cells, "refund_no"),
            txn_type,
            cell(cells, "description"),
        )

    def rows() -> Iterator[tuple[int, list[str]]]:
        if first is not None:
            yield first
        yield from records

    return RowStatement(header, columns, rows(), convert)


def _kaquan_name(printed: str) -> str:
    for name, aliases in ALIASES.items():
        if printed in aliases:
            return name
    return printed


def _trimmed(text: str) -> str:
    """Stripe may print a zero-decimal amount as "1000.00": zeros after the point carry no value."""
    whole, dot, fraction = text.partition(".")
    return whole + (dot + fraction.rstrip("0") if fraction.rstrip("0") else "") if dot else text


def _created(text: str, line: int, column: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise StatementRejected(f"{text!r} is not a date and time", line=line, column=column) from None
    if len(text) < 16:
        raise StatementRejected(f"{text!r} is a date without a time", line=line, column=column)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
