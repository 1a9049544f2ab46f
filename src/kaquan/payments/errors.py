from kaquan.kit.errors import BadInput, Conflict, DomainError, NotFound


class InvalidSignature(BadInput):
    code = "invalid_signature"


class StaleCallback(BadInput):
    code = "callback_stale"


class AmountMismatch(BadInput):
    code = "amount_mismatch"


class MalformedCallback(BadInput):
    code = "malformed_callback"


class PaymentNotFound(NotFound):
    code = "payment_not_found"


class PaymentUnavailable(DomainError):
    """No payment gateway is configured: an order nobody can pay would only hold codes."""

    status = 503
    code = "payment_unavailable"

    def __init__(self) -> None:
        super().__init__("payment is unavailable on this shop right now; no order can be placed")


class DevGatewayDisabled(NotFound):
    """The dev gateway marks any order paid for whoever holds its pay link: off unless switched on."""

    code = "dev_gateway_disabled"

    def __init__(self) -> None:
        super().__init__("the dev payment gateway is not enabled on this server")


class GatewayFailed(DomainError):
    """The provider timed out, answered 5xx or could not be reached: the call is retried later, never doubled."""

    status = 502
    code = "gateway_failed"


class GatewayRefused(BadInput):
    """The provider answered, and said no (a business error): retrying the same request will not help."""

    code = "gateway_refused"


class NotificationMismatch(BadInput):
    """A correctly signed notification about someone else's trade: another app id, merchant or currency."""

    code = "notification_mismatch"


class MethodNotOffered(BadInput):
    code = "payment_method_not_offered"


class RefundTooLarge(Conflict):
    """More back than is left to refund of the payment (what was paid less refunds done or under way)."""

    code = "refund_exceeds_remaining"


class RefundNotAllowed(Conflict):
    code = "refund_not_allowed"


class RefundNotFound(NotFound):
    code = "refund_not_found"
