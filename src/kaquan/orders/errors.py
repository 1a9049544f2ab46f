from kaquan.kit.errors import BadInput, DomainError, NotFound


class InvalidQuantity(BadInput):
    code = "invalid_quantity"

    def __init__(self, quantity: int, cap: int) -> None:
        super().__init__(f"quantity must be between 1 and {cap}, got {quantity}", quantity=quantity, max=cap)


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
