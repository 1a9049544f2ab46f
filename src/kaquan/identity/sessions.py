"""Sign-in, sessions and password changes.

Most functions take the caller's session and never commit. Two are transaction
boundaries themselves, like `payments.notifications.receive`: `login`,
because a failed attempt must be counted (and audited) while the request
itself is refused; and `authenticate_session`, which runs on every admin
request and touches "last seen" at most once a minute.

Audit entries name users; never a password, a session token, a hash or a TOTP secret.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit.service import record
from kaquan.identity.accounts import TOUCH_EVERY, Identity, audit_target, check_password, user_by_id
from kaquan.identity.credentials import new_token, passwords, token_digest, totp_match
from kaquan.identity.errors import LoginFailed, TotpRequired, WeakPassword, WrongPassword
from kaquan.identity.models import AdminSession, AdminUser
from kaquan.identity.permissions import ROLES
from kaquan.identity.throttle import SignInThrottle
from kaquan.identity.totp import totp_secret
from kaquan.kit import clock
from kaquan.kit.crypto import KeyRing
from kaquan.kit.db import Database
from kaquan.kit.errors import DomainError
from kaquan.kit.ratelimit import RateLimiter, enforce

LOGINS_PER_IP_PER_MINUTE = 20
PASSWORD_CHANGES_PER_USER = 5  # per 15 minutes: a stolen session must not become a password oracle
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
ANONYMOUS = "anonymous"
SESSION_KIND = "s"


@dataclass(frozen=True)
class NewSession:
    token: str
    csrf_token: str
    expires_at: datetime
    username: str
    role: str


async def login(
    db: Database,
    keyring: KeyRing,
    limiter: RateLimiter,
    *,
    username: str,
    password: str,
    totp: str | None,
    ip: str | None,
) -> NewSession:
    """Check a password (and TOTP code) and open a session; a transaction boundary, see the module doc.

    Unknown user, wrong password, wrong code and disabled all answer `LoginFailed`, after
    the same argon2 work. Failures never lock the account: they are throttled per address
    (`identity.throttle`), so a guesser is refused with 429 `login_throttled` while the
    owner, from an address that has not failed, still signs in with the right password.
    """
    await enforce(
        limiter, f"login:{ip}", limit=LOGINS_PER_IP_PER_MINUTE, window_s=60, what="sign-in attempts from this address"
    )
    username = username.strip().lower()
    throttle = SignInThrottle(limiter)
    charge = await throttle.admit(username, ip)
    failed = False
    try:
        async with db.read() as session:
            user = (await session.execute(select(AdminUser).where(AdminUser.username == username))).scalar_one_or_none()
            stored = user.password_hash if user is not None else None
        password_ok = await passwords().verify_async(stored, password)
        if user is None:
            failed = True
            raise LoginFailed()
        async with db.transaction() as session:
            outcome = await _settle_login(db, session, keyring, user.id, password_ok, totp, ip)
        failed = isinstance(outcome, LoginFailed)
    finally:
        if not failed:
            await throttle.refund(charge)
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome


async def _settle_login(
    db: Database,
    session: AsyncSession,
    keyring: KeyRing,
    user_id: int,
    password_ok: bool,
    totp: str | None,
    ip: str | None,
) -> NewSession | DomainError:
    user = (await session.execute(db.lock(select(AdminUser).where(AdminUser.id == user_id)))).scalar_one()
    now = clock.now()
    if user.disabled:
        return LoginFailed()
    if not password_ok:
        await _count_failure(session, user, "password", ip)
        return LoginFailed()
    if user.totp_enabled:
        if not totp:
            return TotpRequired("this account needs the current code from its authenticator app")
        secret = await totp_secret(db, session, keyring, user)
        step = totp_match(secret, totp, now, after_step=user.totp_last_step)
        if step is None:
            await _count_failure(session, user, "totp", ip)
            return LoginFailed()
        user.totp_last_step = step
    user.failed_logins = 0
    user.last_login_at = now
    opened = await _open_session(session, user, ip)
    await record(session, user.username, "identity.session.created", target=audit_target(user.id), ip=ip)
    return opened


async def _count_failure(session: AsyncSession, user: AdminUser, why: str, ip: str | None) -> None:
    before: dict[str, Any] = {"failed_logins": user.failed_logins}
    user.failed_logins += 1
    await session.flush()
    # Whoever typed the wrong password is not known to be the user: the actor is anonymous.
    after: dict[str, Any] = {"failed_logins": user.failed_logins, "wrong": why, "username": user.username}
    await record(
        session, ANONYMOUS, "identity.login.failed", target=audit_target(user.id), before=before, after=after, ip=ip
    )


async def _open_session(session: AsyncSession, user: AdminUser, ip: str | None) -> NewSession:
    token, _ = new_token(SESSION_KIND)
    csrf = secrets.token_urlsafe(32)
    now = clock.now()
    expires = now + ABSOLUTE_TIMEOUT
    session.add(
        AdminSession(
            token_hash=token_digest(token),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=expires,
            ip=ip,
        )
    )
    await session.flush()
    return NewSession(token=token, csrf_token=csrf, expires_at=expires, username=user.username, role=user.role)


async def logout(session: AsyncSession, identity: Identity, *, ip: str | None = None) -> None:
    if identity.session_id is None:
        return
    await session.execute(
        update(AdminSession)
        .where(AdminSession.id == identity.session_id, AdminSession.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    await record(session, identity.actor, "identity.session.revoked", target=audit_target(identity.user_id), ip=ip)


async def revoke_sessions(session: AsyncSession, user_id: int) -> int:
    result = await session.execute(
        update(AdminSession)
        .where(AdminSession.user_id == user_id, AdminSession.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def authenticate_session(db: Database, token: str) -> Identity | None:
    """The identity behind a session cookie, or None when unknown, revoked, idle too long or expired."""
    now = clock.now()
    async with db.read() as session:
        row = (
            await session.execute(
                select(AdminSession, AdminUser)
                .join(AdminUser, AdminUser.id == AdminSession.user_id)
                .where(AdminSession.token_hash == token_digest(token))
            )
        ).one_or_none()
    if row is None:
        return None
    held, user = row
    if (
        held.revoked_at is not None
        or held.expires_at <= now
        or held.last_seen_at + IDLE_TIMEOUT <= now
        or user.disabled
        or user.role not in ROLES
    ):
        return None
    if now - held.last_seen_at >= TOUCH_EVERY:
        async with db.transaction() as session:
            await session.execute(update(AdminSession).where(AdminSession.id == held.id).values(last_seen_at=now))
    return Identity(
        user_id=user.id,
        username=user.username,
        role=user.role,
        permissions=ROLES[user.role],
        via="session",
        totp_enabled=user.totp_enabled,
        session_id=held.id,
        csrf_token=held.csrf_token,
    )


async def change_password(
    session: AsyncSession,
    limiter: RateLimiter,
    identity: Identity,
    current: str,
    new: str,
    *,
    ip: str | None = None,
) -> tuple[int, NewSession | None]:
    """Replace the password and end every session of the user; a session caller gets a fresh one."""
    await enforce(
        limiter, f"password:{identity.user_id}", limit=PASSWORD_CHANGES_PER_USER, window_s=900, what="password changes"
    )
    user = await user_by_id(session, identity.user_id)
    if not await passwords().verify_async(user.password_hash, current):
        raise WrongPassword("the current password is wrong")
    check_password(new, user.username)
    if current == new:
        raise WeakPassword("the new password must differ from the current one")
    user.password_hash = await passwords().hash_async(new)
    user.password_changed_at = clock.now()
    await session.flush()
    revoked = await revoke_sessions(session, user.id)
    fresh = await _open_session(session, user, ip) if identity.via == "session" else None
    await record(
        session,
        identity.actor,
        "identity.password.changed",
        target=audit_target(user.id),
        after={"sessions_revoked": revoked},
        ip=ip,
    )
    return revoked, fresh
