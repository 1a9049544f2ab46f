from kaquan.kit.errors import BadInput, DomainError, NotFound


class InvalidQuantity(BadInput):
    code = "invalid_quantity"

    def __init__(self, quantity: int, cap: int) -> None:
        super().__init__(f"quantity must be between 1 and {cap}, got {quantity}", quantity=quantity, max=cap)


def check_quantity(quantity: int, *caps: int) -> None:
    """The one per-order quantity rule: from 1 up to the lowest cap that applies (SKU, deployment, flash policy)."""
    cap = min(caps)
    if not 1 <= quantity <= cap:
        raise InvalidQuantity(quantity, cap)


class OrderNotFound(NotFound):
    """Unknown number or wrong lookup secret: deliberately the same answer for both."""

    code = "order_not_found"

    def __init__(self) -> None:
        super().__init__("no order matches that number and lookup secret")


class SkuNotForSale(BadInput):
    code = "sku_not_for_sale"


class IllegalOrderTransition(DomainError):
    status = 409
    code = "illegal_order_transition"

    def __init__(self, number: str, source: str, target: str) -> None:
        super().__init__(f"order {number} cannot go from {source} to {target}", source=source, target=target)


class TooManyUnpaidOrders(DomainError):
    """The client (its address, device or contact) already holds as many unpaid orders or units as it may."""

    status = 429
    code = "too_many_unpaid_orders"

    def __init__(self, limit: str, maximum: int, retry_after: int) -> None:
        super().__init__(
            f"too many unpaid orders: at most {maximum} {limit} may wait for payment at once; "
            "pay or cancel one, or wait for a hold to lapse",
            limit=limit,
            max=maximum,
            retry_after=retry_after,
        )
