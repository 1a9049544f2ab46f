"""Admin users: creating, listing, finding, and disabling them.

Audit entries name users and roles; never a password or a hash.
"""

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit.service import record
from kaquan.identity.accounts import Identity, audit_target, check_password, role_permissions, user_by_id
from kaquan.identity.credentials import passwords
from kaquan.identity.errors import CannotDisableSelf, UsernameTaken, UserNotFound
from kaquan.identity.models import AdminUser
from kaquan.identity.sessions import revoke_sessions
from kaquan.identity.tokens import revoke_tokens
from kaquan.kit import clock


async def create_user(
    session: AsyncSession, username: str, password: str, role: str, *, actor: str, ip: str | None = None
) -> AdminUser:
    username = username.strip().lower()
    role_permissions(role)
    check_password(password, username)
    now = clock.now()
    user = AdminUser(
        username=username,
        password_hash=await passwords().hash_async(password),
        role=role,
        disabled=False,
        failed_logins=0,
        totp_enabled=False,
        created_at=now,
        password_changed_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(user)
            await session.flush()
    except IntegrityError:
        raise UsernameTaken(f"there is already an admin user called {username!r}", username=username) from None
    await record(
        session,
        actor,
        "identity.user.created",
        target=audit_target(user.id),
        after={"username": username, "role": role},
        ip=ip,
    )
    return user


async def user_count(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(AdminUser))).scalar_one())


async def list_users(session: AsyncSession) -> list[AdminUser]:
    return list((await session.execute(select(AdminUser).order_by(AdminUser.id))).scalars())


async def find_user(session: AsyncSession, username: str) -> AdminUser:
    user = (
        await session.execute(select(AdminUser).where(AdminUser.username == username.strip().lower()))
    ).scalar_one_or_none()
    if user is None:
        raise UserNotFound(f"no admin user called {username!r}", username=username)
    return user


async def set_disabled(
    session: AsyncSession, by: Identity, user_id: int, disabled: bool, *, ip: str | None = None
) -> AdminUser:
    """Disable a user, revoking every session and API token for good, or re-enable it.

    Re-enabling brings no credential back: a disabled account may have been taken over,
    and its tokens with it. The user signs in again and mints new tokens.
    """
    if disabled and user_id == by.user_id:
        raise CannotDisableSelf("you cannot disable your own account")
    user = await user_by_id(session, user_id)
    before = {"disabled": user.disabled}
    user.disabled = disabled
    after: dict[str, Any] = {"disabled": disabled}
    if disabled:
        after["sessions_revoked"] = await revoke_sessions(session, user_id)
        after["tokens_revoked"] = await revoke_tokens(session, user_id)
    await session.flush()
    await record(
        session,
        by.actor,
        "identity.user.disabled" if disabled else "identity.user.enabled",
        target=audit_target(user_id),
        before=before,
        after=after,
        ip=ip,
    )
    return user
