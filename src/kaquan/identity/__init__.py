"""Who may do what: admin users, roles and their permissions, sessions, two-factor codes and API tokens.

`login`, `authenticate_session` and `authenticate_token` are transaction
boundaries themselves (see `identity.sessions` and `identity.tokens`); every
other function takes the caller's session and never commits. Audit entries name
users, roles, scopes and token prefixes; never a password, a token, a hash or a
TOTP secret.

The public surface is what this module exports; other modules use only that.
"""

from kaquan.identity.accounts import TOUCH_EVERY, Identity, check_password
from kaquan.identity.sessions import (
    ABSOLUTE_TIMEOUT,
    IDLE_TIMEOUT,
    LOGINS_PER_IP_PER_MINUTE,
    PASSWORD_CHANGES_PER_USER,
    NewSession,
    authenticate_session,
    change_password,
    login,
    logout,
)
from kaquan.identity.tokens import authenticate_token, create_token, list_tokens, revoke_token
from kaquan.identity.totp import confirm_totp, reset_totp, start_totp
from kaquan.identity.users import create_user, find_user, list_users, set_disabled, user_count

__all__ = [
    "ABSOLUTE_TIMEOUT",
    "IDLE_TIMEOUT",
    "LOGINS_PER_IP_PER_MINUTE",
    "PASSWORD_CHANGES_PER_USER",
    "TOUCH_EVERY",
    "Identity",
    "NewSession",
    "authenticate_session",
    "authenticate_token",
    "change_password",
    "check_password",
    "confirm_totp",
    "create_token",
    "create_user",
    "find_user",
    "list_tokens",
    "list_users",
    "login",
    "logout",
    "reset_totp",
    "revoke_token",
    "set_disabled",
    "start_totp",
    "user_count",
]
