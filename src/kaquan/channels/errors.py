"""Errors of the channels module: open API authentication, agents and their orders.

Messages name what the caller can fix; none holds a secret or the expected signature.
"""

from kaquan.kit.errors import Conflict, Forbidden, NotFound, Unauthorized


class InvalidSignature(Unauthorized):
    """The signature is missing or does not match the request as the server received it."""

    code = "invalid_signature"

    def __init__(self, reason: str = "the signature does not match the request") -> None:
        super().__init__(f"{reason}; sign the canonical string of KQ1-HMAC-SHA256 (see the open API guide)")


class UnknownKey(Unauthorized):
    """No API key has the offered key id (the id is not echoed: it may be a pasted secret)."""

    code = "unknown_key"

    def __init__(self) -> None:
        super().__init__("the X-Kq-Key header names no API key")


class KeyRevoked(Unauthorized):
    code = "key_revoked"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key {key_id} is revoked", key_id=key_id)


class TimestampOutOfWindow(Unauthorized):
    """The request's timestamp is malformed or too far from the server's clock (a replay, or a skewed clock)."""

    code = "timestamp_out_of_window"

    def __init__(self, server_time: int, window_s: int, *, reason: str | None = None) -> None:
        message = reason or f"the request timestamp is more than {window_s} s from the server's clock"
        super().__init__(message, server_time=server_time, window_s=window_s)


class NonceReused(Unauthorized):
    code = "nonce_reused"

    def __init__(self) -> None:
        super().__init__("this nonce was already used with this key; send a fresh random nonce with every request")


class IpNotAllowed(Forbidden):
    code = "ip_not_allowed"

    def __init__(self, ip: str) -> None:
        super().__init__(f"{ip} is not on this key's IP allowlist", ip=ip)


class SkuNotAvailableForAgent(NotFound):
    """The SKU does not exist or is not on this agent's price list (the two are not told apart)."""

    code = "sku_not_available_for_agent"

    def __init__(self, sku: str) -> None:
        super().__init__(f"SKU {sku} is not available to this agent", sku=sku)


class AgentNotFound(NotFound):
    code = "agent_not_found"

    def __init__(self, agent: int | str) -> None:
        super().__init__(f"no agent {agent}", agent=agent)


class AgentOrderNotFound(NotFound):
    """The agent has no order under this out_order_no (another agent's orders are invisible)."""

    code = "order_not_found"

    def __init__(self, out_order_no: str) -> None:
        super().__init__(f"no order with out_order_no {out_order_no}", out_order_no=out_order_no)


class OrderNotRefundable(Conflict):
    """The order cannot be refunded as it stands: it is not delivered, or one of its codes was redeemed."""

    code = "order_not_refundable"

    def __init__(self, out_order_no: str, why: str, *, status: str) -> None:
        super().__init__(f"order {out_order_no} cannot be refunded: {why}", out_order_no=out_order_no, status=status)
