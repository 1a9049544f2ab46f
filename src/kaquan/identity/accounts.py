"""What every part of identity checks against: the identity that acts, a role's permissions, the password rules.

The rows themselves are in `identity.models`; signing in is `identity.sessions`,
API tokens `identity.tokens`, two-factor codes `identity.totp`, and managing
admin users `identity.users`.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.identity.credentials import MAX_PASSWORD, MIN_PASSWORD
from kaquan.identity.errors import UnknownRole, UserNotFound, WeakPassword
from kaquan.identity.models import AdminUser
from kaquan.identity.permissions import ROLES, Permission

TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class Identity:
    """An authenticated admin: who, with which role, through which credential, allowed what."""

    user_id: int
    username: str
    role: str
    permissions: frozenset[Permission]
    via: Literal["session", "token"]
    totp_enabled: bool
    session_id: int | None = None
    csrf_token: str | None = None
    token_id: int | None = None
    token_prefix: str | None = None

    @property
    def actor(self) -> str:
        return self.username if self.token_prefix is None else f"{self.username} (token {self.token_prefix})"


def audit_target(user_id: int) -> str:
    return f"admin_user:{user_id}"


def check_password(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD} characters", min_length=MIN_PASSWORD)
    if len(password) > MAX_PASSWORD:
        raise WeakPassword(f"a password may have at most {MAX_PASSWORD} characters", max_length=MAX_PASSWORD)
    if username.lower() in password.lower() or len(set(password)) < 4:
        raise WeakPassword("a password must not contain the username or repeat a few characters")


def role_permissions(role: str) -> frozenset[Permission]:
    if role not in ROLES:
        raise UnknownRole(f"unknown role {role!r}; roles are {', '.join(ROLES)}", roles=list(ROLES))
    return ROLES[role]


async def user_by_id(session: AsyncSession, user_id: int) -> AdminUser:
    user = await session.get(AdminUser, user_id, with_for_update=False)
    if user is None:
        raise UserNotFound(f"no admin user {user_id}", user_id=user_id)
    return user
