"""Buyer verification errors: what a buyer got wrong, with its HTTP status and stable code."""

from kaquan.kit.errors import BadInput, DomainError, Unauthorized


class InvalidContact(BadInput):
    code = "invalid_contact"

    def __init__(self, why: str) -> None:
        super().__init__(f"the contact must be an e-mail address or a phone number: {why}", field="contact")


class NoContactChannel(DomainError):
    """Nothing is configured that could deliver a code to this kind of contact."""

    status = 422
    code = "contact_channel_unavailable"

    def __init__(self, kind: str) -> None:
        super().__init__(f"this shop cannot send codes to a {kind} contact", kind=kind)


class CodeWrong(BadInput):
    code = "code_wrong"

    def __init__(self, attempts_left: int) -> None:
        super().__init__("that is not the code we sent", attempts_left=attempts_left)


class CodeExpired(BadInput):
    """No live code for the contact: it expired, was used, or was never sent."""

    code = "code_expired"

    def __init__(self) -> None:
        super().__init__("no live code for this contact; ask for a new one")


class TooManyAttempts(DomainError):
    status = 429
    code = "too_many_attempts"

    def __init__(self) -> None:
        super().__init__("too many wrong codes; ask for a new one")


class BuyerTokenRequired(Unauthorized):
    """The flash sale counts its limit per verified contact: verify one first."""

    code = "buyer_verification_required"

    def __init__(self) -> None:
        super().__init__(
            "this sale needs a verified contact: POST /api/buyers/verify/start, then /confirm, then buy with the token"
        )
