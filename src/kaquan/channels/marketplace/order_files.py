"""Marketplace order files: the export a marketplace gives the operator, checked whole, then delivered in batches.

The file is UTF-8 CSV (a BOM is fine) with a header naming the columns
`marketplace_order_id,sku,quantity` and optionally `buyer`, in any order.
Every line is checked before anything is placed; a file with a bad line is
refused whole, naming each bad line. Then the lines are placed SKU by SKU in
batches, one transaction each, through the same path as pushed orders, so a
line whose order id was pushed or imported before is delivered again.
"""

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.channels.marketplace import stores
from kaquan.channels.marketplace.stores import Delivered, MarketplaceOrderRequest, OrderLine
from kaquan.channels.models import Channel
from kaquan.inventory import Vault, Viewer
from kaquan.kit.db import Database
from kaquan.kit.errors import BadInput, DomainError

FILE_COLUMNS = ("marketplace_order_id", "sku", "quantity")
OPTIONAL_COLUMNS = ("buyer",)
FILE_REASON = "marketplace file delivery"
BATCH_SIZE = 200


class OrderFileRejected(BadInput):
    """Some lines of an order file are bad; nothing in it was placed."""

    code = "order_file_rejected"

    def __init__(self, problems: list[dict[str, Any]], message: str | None = None) -> None:
        first = problems[0] if problems else None
        summary = message or (
            f"{len(problems)} bad line(s), nothing placed; first: line {first['line_no']}: {first['reason']}"
            if first
            else "the order file was rejected; nothing placed"
        )
        super().__init__(summary, problems=problems, problem_count=len(problems))


def _problem(line_no: int, code: str, reason: str) -> dict[str, Any]:
    return {"line_no": line_no, "code": code, "reason": reason}


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_no = data[: exc.start].count(b"\n") + 1
        raise OrderFileRejected(
            [_problem(line_no, "not_utf8", "this line is not UTF-8; save the file as UTF-8")]
        ) from None


def _columns(row: list[str], line_no: int) -> list[str]:
    names = [cell.strip().lower() for cell in row]
    allowed = set(FILE_COLUMNS) | set(OPTIONAL_COLUMNS)
    if not set(FILE_COLUMNS) <= set(names) or not set(names) <= allowed or len(set(names)) != len(names):
        raise OrderFileRejected(
            [
                _problem(
                    line_no,
                    "bad_header",
                    f"the header must be {','.join(FILE_COLUMNS)} (and optionally {','.join(OPTIONAL_COLUMNS)})",
                )
            ]
        )
    return names


def _line(values: dict[str, str], line_no: int, max_per_order: int) -> OrderLine:
    quantity = values["quantity"]
    if not (quantity.isascii() and quantity.isdigit()):
        raise BadInput(f"quantity must be a whole number from 1 to {max_per_order}", field="quantity")
    request = MarketplaceOrderRequest(
        values["marketplace_order_id"], values["sku"], int(quantity), values.get("buyer", "")
    )
    stores.check_request(request, max_per_order)
    return OrderLine(line_no, request)


def parse_order_file(data: bytes, *, max_per_order: int) -> tuple[list[OrderLine], list[dict[str, Any]]]:
    """The lines of an order file (UTF-8 CSV with a header) and the problems of its bad lines."""
    reader = csv.reader(io.StringIO(_decode(data), newline=""))
    names: list[str] | None = None
    lines: list[OrderLine] = []
    problems: list[dict[str, Any]] = []
    first_line: dict[str, int] = {}
    try:
        for row in reader:
            line_no = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if names is None:
                names = _columns(row, line_no)
                continue
            if len(row) != len(names):
                problems.append(
                    _problem(line_no, "misshapen_line", f"{len(row)} field(s), the header names {len(names)}")
                )
                continue
            try:
                line = _line(dict(zip(names, (cell.strip() for cell in row), strict=True)), line_no, max_per_order)
            except DomainError as exc:
                problems.append(_problem(line_no, exc.code, exc.message))
                continue
            earlier = first_line.setdefault(line.request.marketplace_order_id, line_no)
            if earlier != line_no:
                problems.append(
                    _problem(
                        line_no,
                        "duplicate_in_file",
                        f"marketplace order {line.request.marketplace_order_id} is on line {earlier} already",
                    )
                )
                continue
            lines.append(line)
    except csv.Error as exc:
        problems.append(_problem(reader.line_num, "unreadable_csv", f"not readable as CSV: {exc}"))
    if names is None:
        raise OrderFileRejected([], "the file is empty; it needs the header " + ",".join(FILE_COLUMNS))
    if not lines and not problems:
        raise OrderFileRejected([], "the file holds a header but no orders")
    return lines, problems


async def check_order_file(session: AsyncSession, store: str, data: bytes, *, max_per_order: int) -> list[OrderLine]:
    """Every line of an order file, or `OrderFileRejected` naming every bad line (nothing placed).

    Besides its own shape, a line is bad when its SKU is not on the store's price
    list or is not sold as unique codes, unless its id was placed before (it
    will be delivered again, or reported as a conflict).
    """
    channel = await stores.selling_store(session, store)
    lines, problems = parse_order_file(data, max_per_order=max_per_order)
    known = await stores.known_orders(session, store, [line.request.marketplace_order_id for line in lines])
    verdicts: dict[str, tuple[str, str] | None] = {}
    for line in lines:
        sku = line.request.sku
        if line.request.marketplace_order_id in known:
            continue
        if sku not in verdicts:
            verdicts[sku] = await _sku_problem(session, channel, store, sku)
        verdict = verdicts[sku]
        if verdict is not None:
            problems.append(_problem(line.line_no, *verdict))
    if problems:
        raise OrderFileRejected(sorted(problems, key=lambda problem: problem["line_no"]))
    return lines


async def _sku_problem(session: AsyncSession, channel: Channel, store: str, sku: str) -> tuple[str, str] | None:
    """(code, reason) when lines of this SKU cannot be placed in the store."""
    try:
        priced = await stores.listed_price(session, channel, store, sku)
    except stores.SkuNotListed as exc:
        return exc.code, exc.message
    if priced.sku.stock_kind != "codes":
        return "wrong_stock_kind", f"SKU {sku} is sold as serial ranges; marketplace orders take unique codes"
    return None


async def import_orders(
    db: Database,
    vault: Vault,
    store: str,
    lines: Sequence[OrderLine],
    *,
    batch_size: int = BATCH_SIZE,
    on_batch: Callable[[list[Delivered]], None] | None = None,
) -> list[Delivered]:
    """Place checked lines SKU by SKU, `batch_size` lines per transaction, in file order within a SKU.

    Each batch commits on its own (a later failure keeps the earlier batches,
    and importing the file again delivers them again), then `on_batch` sees its
    answers: that is where the caller writes the codes out. Answers come back in
    line order.
    """
    if batch_size < 1:
        raise BadInput("batch_size must be at least 1", field="batch_size")
    viewer = Viewer(stores.channel_of(store), FILE_REASON)
    by_sku: dict[str, list[OrderLine]] = defaultdict(list)
    for line in lines:
        by_sku[line.request.sku].append(line)
    answers: list[Delivered] = []
    for sku, group in by_sku.items():
        for start in range(0, len(group), batch_size):
            chunk = group[start : start + batch_size]

            async def work(session: AsyncSession, sku: str = sku, chunk: list[OrderLine] = chunk) -> list[Delivered]:
                return await stores.deliver_batch(db, session, vault, store, sku, chunk, viewer)

            done = await db.run(work)
            if on_batch is not None:
                on_batch(done)
            answers.extend(done)
    return sorted(answers, key=lambda answer: answer.line.line_no)
