from typing import Any

from kaquan.kit.errors import BadInput, Conflict, DomainError, NotFound


class OutOfStock(Conflict):
    """Fewer codes are available than the order asks for."""

    code = "out_of_stock"

    def __init__(self, sku_id: int, wanted: int, available: int) -> None:
        super().__init__(
            f"SKU {sku_id}: {wanted} wanted, {available} available",
            sku_id=sku_id,
            wanted=wanted,
            available=available,
        )


class ImportRejected(BadInput):
    """Some lines of an import are bad; nothing was imported."""

    code = "import_rejected"

    def __init__(self, problems: list[dict[str, Any]], *, total: int) -> None:
        first = problems[0]
        super().__init__(
            f"{total} bad line(s), nothing imported; first: line {first['line_no']}: {first['reason']}",
            problems=problems,
            problem_count=total,
        )


class SegmentOverlap(Conflict):
    code = "segment_overlap"


class WarehouseNotFound(NotFound):
    code = "warehouse_not_found"


class WrongStockKind(BadInput):
    code = "wrong_stock_kind"


class IllegalTransition(DomainError):
    """A code was asked to move between states the lifecycle does not allow: a bug, never user input."""

    status = 500
    code = "illegal_transition"
