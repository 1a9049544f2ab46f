"""An agent's own statement: what it says it bought from kaquan through the open API.

Columns, by name: out_order_no (the agent's order number, which kaquan keeps
as the order's idempotency key), order_no (kaquan's order number), sku,
quantity, amount (yuan, two decimals at most), created_at (ISO 8601 with or
without an offset, or "YYYY-MM-DD HH:MM:SS"; Asia/Shanghai where no offset is
given), status (delivered or refunded), currency (optional, CNY). UTF-8 with or
without a BOM. A delivered order is a payment, a refunded one a refund.
"""

from typing import IO, Final

from kaquan.statements.lines import LineKind, StatementHeader, StatementLine, StatementRejected
from kaquan.statements.reading import BEIJING, Columns, Rows, amount, currency_of, iso_time, text_lines
from kaquan.statements.rowwise import RowStatement, first_record

REQUIRED: Final = ("out_order_no", "order_no", "sku", "quantity", "amount", "created_at", "status")
KINDS: Final[dict[str, LineKind]] = {"delivered": "payment", "refunded": "refund"}
# one order is both delivered and, later, refunded: the kind is part of the identity
IDENTITY_PREFIX: Final[dict[LineKind, str]] = {"payment": "order:", "refund": "refund:"}


def read(stream: IO[bytes], *, agent: str | None) -> RowStatement:
    records = iter(Rows(text_lines(stream, "utf-8")))
    line, cells = first_record(records, "an agent statement")
    columns = Columns([cell.strip().lower() for cell in cells], line=line, required=REQUIRED, what="agent statement")
    i_out, i_order, i_sku, i_quantity, i_amount, i_at, i_status = (columns.index(name) for name in REQUIRED)
    i_currency = columns.optional("currency")
    agent = agent or ""
    header = StatementHeader(
        source=f"agent:{agent}" if agent else "agent", account=agent, period_start=None, period_end=None, currency="CNY"
    )

    def convert(line: int, raw: list[str]) -> StatementLine:
        cells = [cell.strip() for cell in raw]
        code, digits = "CNY", 2
        if i_currency is not None and cells[i_currency]:
            code, digits = currency_of(cells[i_currency], line=line, column="currency")
        status = cells[i_status].lower()
        kind = KINDS.get(status)
        if kind is None:
            raise StatementRejected(
                f"unknown status {cells[i_status]!r} (delivered or refunded)", line=line, column="status"
            )
        quantity = cells[i_quantity]
        if not (quantity.isascii() and quantity.isdigit() and int(quantity) > 0):
            raise StatementRejected(f"{quantity!r} is not a positive whole quantity", line=line, column="quantity")
        order_no = cells[i_order]
        if not order_no:
            raise StatementRejected("a row without kaquan's order number", line=line, column="order_no")
        value = amount(cells[i_amount], line=line, column="amount", digits=digits)
        if value < 0:
            raise StatementRejected(
                "an amount is never negative here: status says which way", line=line, column="amount"
            )
        return StatementLine(
            line,
            IDENTITY_PREFIX[kind] + order_no,
            kind,
            iso_time(cells[i_at], BEIJING, line=line, column="created_at"),
            value,
            0,
            code,
            cells[i_out],
            order_no,
            "",
            status,
            f"{cells[i_sku]} ×{int(quantity)}",
        )

    return RowStatement(header, columns, records, convert)
