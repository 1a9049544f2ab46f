"""What can go wrong signing in and managing admin identities."""

from kaquan.kit.errors import BadInput, Conflict, Forbidden, NotFound, RateLimited, Unauthorized


class LoginFailed(Unauthorized):
    """Unknown user, wrong password, wrong TOTP code or disabled account: one answer for all."""

    code = "login_failed"

    def __init__(self) -> None:
        super().__init__("wrong username, password or code, or the account is disabled")


class LoginThrottled(RateLimited):
    """Too many failed sign-ins from this address (for this account, or for any): wait, or sign in elsewhere."""

    code = "login_throttled"

    def __init__(self, *, retry_after: int) -> None:
        super().__init__(
            f"too many failed sign-in attempts from this address; try again in {retry_after} s", retry_after=retry_after
        )


class TotpRequired(Unauthorized):
    """The password was right; this account also needs its current authenticator code."""

    code = "totp_required"


class SessionRequired(Unauthorized):
    """Changing one's own credentials needs a password sign-in, not an API token."""

    code = "session_required"


class CsrfFailed(Forbidden):
    code = "csrf_failed"


class ScopeNotAllowed(Forbidden):
    """A token may carry only permissions its creator holds."""

    code = "scope_not_allowed"


class WeakPassword(BadInput):
    code = "weak_password"


class WrongPassword(BadInput):
    code = "wrong_password"


class TotpInvalid(BadInput):
    code = "totp_invalid"


class UnknownRole(BadInput):
    code = "unknown_role"


class UsernameTaken(Conflict):
    code = "username_taken"


class CannotDisableSelf(Conflict):
    code = "cannot_disable_self"


class UserNotFound(NotFound):
    code = "user_not_found"


class TokenNotFound(NotFound):
    code = "token_not_found"
