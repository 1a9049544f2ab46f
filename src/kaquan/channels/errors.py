"""Errors of the channels module: open API authentication, agents and their orders.

Messages name what the caller can fix; none holds a secret or the expected signature.
"""

from kaquan.kit.errors import BadInput, Conflict, Forbidden, NotFound, Unauthorized


class InvalidSignature(Unauthorized):
    """The signature does not match the request as the server received it (or is not 64 hex digits)."""

    code = "invalid_signature"

    def __init__(self, reason: str = "the signature does not match the request") -> None:
        super().__init__(f"{reason}; sign the canonical string of KQ1-HMAC-SHA256 (see the open API guide)")


class MissingSignatureHeader(Unauthorized):
    """One or more of the four X-Kq-* headers is missing or empty; `details.missing` names them."""

    code = "missing_signature_header"

    def __init__(self, missing: list[str]) -> None:
        super().__init__(
            f"the {', '.join(missing)} header(s) are missing; every open API request carries all four X-Kq-* headers",
            missing=missing,
        )


class InvalidNonce(Unauthorized):
    """The nonce is not 16-64 characters of the URL-safe base64 alphabet."""

    code = "invalid_nonce"

    def __init__(self) -> None:
        super().__init__("X-Kq-Nonce must be 16-64 characters of A-Z a-z 0-9 _ - (fresh and random for each request)")


class InvalidTimestamp(Unauthorized):
    """The timestamp is not whole Unix seconds (e.g. an ISO date, a float); `details.server_time` helps to fix it."""

    code = "invalid_timestamp"

    def __init__(self, server_time: int) -> None:
        super().__init__(
            "X-Kq-Timestamp must be the Unix time in whole seconds (decimal, not milliseconds)", server_time=server_time
        )


class AmbiguousQuery(BadInput):
    """A raw `+` in the query: a space to some parsers, a plus sign to others, so the signed value is unclear."""

    code = "ambiguous_query"

    def __init__(self) -> None:
        super().__init__(
            "a raw + in the query string is ambiguous; percent-encode a space as %20 and a plus sign as %2B",
            field="query",
        )


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
    """The request's timestamp is too far from the server's clock (a replay, or a skewed clock).

    `details.server_time` is the server's clock in whole Unix seconds (an integer), `details.window_s` the window.
    """

    code = "timestamp_out_of_window"

    def __init__(self, server_time: int, window_s: int) -> None:
        message = f"the request timestamp is more than {window_s} s from the server's clock"
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
