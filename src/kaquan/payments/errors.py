from kaquan.kit.errors import BadInput, NotFound


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
