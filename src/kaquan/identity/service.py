"""Admin users, sign-in, sessions, two-factor codes and API tokens.

Most functions take the caller's session and never commit. Three are transaction
boundaries themselves, like `payments.service.receive_notification`: `login`,
because a failed attempt must be counted (and audited) while the request
itself is refused; and `authenticate_session` / `authenticate_token`,
which run on every admin request and touch "last seen" at most once a minute.

Audit entries name users, roles, scopes and token prefixes; never a password,
a token, a hash or a TOTP secret.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit.service import record
from kaquan.identity.credentials import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    new_token,
    new_totp_secret,
    passwords,
    token_digest,
    totp_match,
    totp_uri,
)
from kaquan.identity.errors import (
    CannotDisableSelf,
    LoginFailed,
    ScopeNotAllowed,
    TokenNotFound,
    TotpInvalid,
    TotpRequired,
    UnknownRole,
    UsernameTaken,
    UserNotFound,
    WeakPassword,
    WrongPassword,
)
from kaquan.identity.models import AdminSession, AdminUser, ApiToken
from kaquan.identity.permissions import ROLES, Permission
from kaquan.identity.throttle import SignInThrottle
from kaquan.kit import clock
from kaquan.kit.crypto import KeyRing, SecretBox
from kaquan.kit.db import Database
from kaquan.kit.errors import Conflict, DomainError, Unauthorized
from kaquan.kit.keys import named_key
from kaquan.kit.ratelimit import RateLimiter, enforce

LOGINS_PER_IP_PER_MINUTE = 20
PASSWORD_CHANGES_PER_USER = 5  # per 15 minutes: a stolen session must not become a password oracle
IDLE_TIMEOUT = timedelta(minutes=30)
ABSOLUTE_TIMEOUT = timedelta(hours=12)
TOUCH_EVERY = timedelta(seconds=60)
TOTP_KEY = "identity.totp"
ANONYMOUS = "anonymous"
SESSION_KIND = "s"
TOKEN_KIND = "t"  # noqa: S105 (the letter in "kqt_", not a secret)


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


@dataclass(frozen=True)
class NewSession:
    token: str
    csrf_token: str
    expires_at: datetime
    username: str
    role: str


def _target(user_id: int) -> str:
    return f"admin_user:{user_id}"


def check_password(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD} characters", min_length=MIN_PASSWORD)
    if len(password) > MAX_PASSWORD:
        raise WeakPassword(f"a password may have at most {MAX_PASSWORD} characters", max_length=MAX_PASSWORD)
    if username.lower() in password.lower() or len(set(password)) < 4:
        raise WeakPassword("a password must not contain the username or repeat a few characters")


def _role_permissions(role: str) -> frozenset[Permission]:
    if role not in ROLES:
        raise UnknownRole(f"unknown role {role!r}; roles are {', '.join(ROLES)}", roles=list(ROLES))
    return ROLES[role]


# --- users --------------------------------------------------------------------------------------


async def create_user(
    session: AsyncSession, username: str, password: str, role: str, *, actor: str, ip: str | None = None
) -> AdminUser:
    username = username.strip().lower()
    _role_permissions(role)
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
        target=_target(user.id),
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


async def _user(session: AsyncSession, user_id: int) -> AdminUser:
    user = await session.get(AdminUser, user_id, with_for_update=False)
    if user is None:
        raise UserNotFound(f"no admin user {user_id}", user_id=user_id)
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
    user = await _user(session, user_id)
    before = {"disabled": user.disabled}
    user.disabled = disabled
    after: dict[str, Any] = {"disabled": disabled}
    if disabled:
        after["sessions_revoked"] = await _revoke_sessions(session, user_id)
        after["tokens_revoked"] = await _revoke_tokens(session, user_id)
    await session.flush()
    await record(
        session,
        by.actor,
        "identity.user.disabled" if disabled else "identity.user.enabled",
        target=_target(user_id),
        before=before,
        after=after,
        ip=ip,
    )
    return user


# --- sign-in ------------------------------------------------------------------------------------


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
        secret = await _totp_secret(db, session, keyring, user)
        step = totp_match(secret, totp, now, after_step=user.totp_last_step)
        if step is None:
            await _count_failure(session, user, "totp", ip)
            return LoginFailed()
        user.totp_last_step = step
    user.failed_logins = 0
    user.last_login_at = now
    opened = await _open_session(session, user, ip)
    await record(session, user.username, "identity.session.created", target=_target(user.id), ip=ip)
    return opened


async def _count_failure(session: AsyncSession, user: AdminUser, why: str, ip: str | None) -> None:
    before: dict[str, Any] = {"failed_logins": user.failed_logins}
    user.failed_logins += 1
    await session.flush()
    # Whoever typed the wrong password is not known to be the user: the actor is anonymous.
    after: dict[str, Any] = {"failed_logins": user.failed_logins, "wrong": why, "username": user.username}
    await record(
        session, ANONYMOUS, "identity.login.failed", target=_target(user.id), before=before, after=after, ip=ip
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
    await record(session, identity.actor, "identity.session.revoked", target=_target(identity.user_id), ip=ip)


async def _revoke_sessions(session: AsyncSession, user_id: int) -> int:
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


# --- password and two-factor ------------------------------------------------------------------------


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
    user = await _user(session, identity.user_id)
    if not await passwords().verify_async(user.password_hash, current):
        raise WrongPassword("the current password is wrong")
    check_password(new, user.username)
    if current == new:
        raise WeakPassword("the new password must differ from the current one")
    user.password_hash = await passwords().hash_async(new)
    user.password_changed_at = clock.now()
    await session.flush()
    revoked = await _revoke_sessions(session, user.id)
    fresh = await _open_session(session, user, ip) if identity.via == "session" else None
    await record(
        session,
        identity.actor,
        "identity.password.changed",
        target=_target(user.id),
        after={"sessions_revoked": revoked},
        ip=ip,
    )
    return revoked, fresh


def _totp_bound(user_id: int) -> bytes:
    """Associated data: a sealed secret copied onto another user's row does not open."""
    return f"identity_users/{user_id}/totp".encode()


async def _totp_box(db: Database, session: AsyncSession, keyring: KeyRing) -> SecretBox:
    return SecretBox(await named_key(db, session, keyring, TOTP_KEY))


async def _totp_secret(db: Database, session: AsyncSession, keyring: KeyRing, user: AdminUser) -> str:
    if user.totp_sealed is None:
        raise TotpInvalid("two-factor sign-in was not started for this account")
    return (await _totp_box(db, session, keyring)).open(user.totp_sealed, _totp_bound(user.id))


async def start_totp(
    db: Database, session: AsyncSession, keyring: KeyRing, identity: Identity, *, ip: str | None = None
) -> tuple[str, str]:
    """A new TOTP secret for the caller, pending until a code confirms it; returns (secret, otpauth URI)."""
    user = await _user(session, identity.user_id)
    if user.totp_enabled:
        raise Conflict("two-factor sign-in is already on; an owner can reset it", user_id=user.id)
    secret = new_totp_secret()
    user.totp_sealed = (await _totp_box(db, session, keyring)).seal(secret, _totp_bound(user.id))
    user.totp_last_step = None
    await session.flush()
    await record(session, identity.actor, "identity.totp.started", target=_target(user.id), ip=ip)
    return secret, totp_uri(secret, user.username)


async def confirm_totp(
    db: Database, session: AsyncSession, keyring: KeyRing, identity: Identity, code: str, *, ip: str | None = None
) -> None:
    user = await _user(session, identity.user_id)
    if user.totp_enabled:
        raise Conflict("two-factor sign-in is already on", user_id=user.id)
    secret = await _totp_secret(db, session, keyring, user)
    step = totp_match(secret, code, clock.now(), after_step=None)
    if step is None:
        raise TotpInvalid("that code is not the authenticator's current one")
    user.totp_enabled = True
    user.totp_last_step = step
    await session.flush()
    await record(
        session,
        identity.actor,
        "identity.totp.enabled",
        target=_target(user.id),
        before={"totp_enabled": False},
        after={"totp_enabled": True},
        ip=ip,
    )


async def reset_totp(session: AsyncSession, by: Identity, user_id: int, *, ip: str | None = None) -> AdminUser:
    """Turn two-factor sign-in off for a user who lost the authenticator (an owner's act)."""
    user = await _user(session, user_id)
    before = {"totp_enabled": user.totp_enabled}
    user.totp_enabled = False
    user.totp_sealed = None
    user.totp_last_step = None
    await session.flush()
    await record(
        session,
        by.actor,
        "identity.totp.reset",
        target=_target(user_id),
        before=before,
        after={"totp_enabled": False},
        ip=ip,
    )
    return user


# --- API tokens -----------------------------------------------------------------------------------


async def create_token(
    session: AsyncSession,
    user_id: int,
    name: str,
    scopes: list[Permission],
    *,
    expires_in_days: int,
    allowed: frozenset[Permission],
    actor: str,
    parent_id: int | None = None,
    ip: str | None = None,
) -> tuple[ApiToken, str]:
    """A new API token for `user_id`; returns the row and the plaintext, which is never seen again.

    `allowed` is what the creator may hand out: its role's permissions, or a token's
    effective permissions when a token creates a token (so a token never widens itself).
    `parent_id` is that creating token: the child gets at most its scopes and expires
    no later, and `revoke_token` on the parent revokes the child. The parent row is
    locked and checked live here, so a parent revoked since it authenticated mints nothing.
    """
    user = await _user(session, user_id)
    now = clock.now()
    expires_at = now + timedelta(days=expires_in_days)
    wanted = frozenset(scopes)
    granted = allowed & _role_permissions(user.role)
    if parent_id is not None:
        parent = await _live_parent(session, user.id, parent_id, now)
        granted &= frozenset(p for p in Permission if p.value in parent.scopes)
        expires_at = min(expires_at, parent.expires_at)
    beyond = sorted(p.value for p in wanted - granted)
    if beyond:
        raise ScopeNotAllowed(f"a token cannot carry {', '.join(beyond)}: the creator does not hold it", scopes=beyond)
    token, prefix = new_token(TOKEN_KIND)
    row = ApiToken(
        user_id=user.id,
        name=name,
        parent_id=parent_id,
        prefix=prefix,
        token_hash=token_digest(token),
        scopes=sorted(p.value for p in wanted),
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    await record(
        session,
        actor,
        "identity.token.created",
        target=f"api_token:{row.id}",
        after={
            "user": user.username,
            "name": name,
            "prefix": prefix,
            "scopes": row.scopes,
            "expires_at": row.expires_at.isoformat(),
            "parent_id": parent_id,
        },
        ip=ip,
    )
    return row, token


async def _live_parent(session: AsyncSession, user_id: int, parent_id: int, now: datetime) -> ApiToken:
    """The creating token, locked until commit (a concurrent revocation waits for us, or we see it)."""
    stmt = select(ApiToken).where(ApiToken.id == parent_id, ApiToken.user_id == user_id).with_for_update()
    parent = (await session.execute(stmt)).scalar_one_or_none()
    if parent is None or parent.revoked_at is not None or parent.expires_at <= now:
        raise Unauthorized("the API token making this request has been revoked or has expired")
    return parent


async def list_tokens(session: AsyncSession, user_id: int) -> list[ApiToken]:
    stmt = select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)
    return list((await session.execute(stmt)).scalars())


async def revoke_token(
    session: AsyncSession, user_id: int, token_id: int, *, actor: str, ip: str | None = None
) -> ApiToken:
    """Revoke one of the user's tokens; revoking a revoked token is harmless and records nothing."""
    row = (
        await session.execute(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id))
    ).scalar_one_or_none()
    if row is None:
        raise TokenNotFound(f"no API token {token_id} of yours", token_id=token_id)
    if row.revoked_at is None:
        now = clock.now()
        row.revoked_at = now
        await session.flush()
        descendants = await _revoke_descendants(session, [row.id], now)
        await record(
            session,
            actor,
            "identity.token.revoked",
            target=f"api_token:{row.id}",
            before={"revoked": False},
            after={"revoked": True, "prefix": row.prefix, "descendants_revoked": descendants},
            ip=ip,
        )
    return row


async def _revoke_descendants(session: AsyncSession, roots: list[int], now: datetime) -> list[str]:
    """Revoke every live token created, directly or through others, by `roots`; returns their prefixes.

    Level by level, each level locked before the next is read: a child being minted
    holds its parent's lock (`_live_parent`), so once we hold a level's locks, every
    child of it has either committed (and the next read sees it) or will find its
    parent revoked.
    """
    revoked: list[str] = []
    level = roots
    while level:
        stmt = select(ApiToken).where(ApiToken.parent_id.in_(level)).order_by(ApiToken.id).with_for_update()
        children = list((await session.execute(stmt)).scalars())
        for child in children:
            if child.revoked_at is None:
                child.revoked_at = now
                revoked.append(child.prefix)
        level = [child.id for child in children]
    await session.flush()
    return revoked


async def _revoke_tokens(session: AsyncSession, user_id: int) -> int:
    result = await session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def authenticate_token(db: Database, token: str) -> Identity | None:
    """The identity behind an API token, or None; its permissions are its scopes within its user's role."""
    if not token.startswith(f"kq{TOKEN_KIND}_"):
        return None
    now = clock.now()
    async with db.read() as session:
        row = (
            await session.execute(
                select(ApiToken, AdminUser)
                .join(AdminUser, AdminUser.id == ApiToken.user_id)
                .where(ApiToken.token_hash == token_digest(token))
            )
        ).one_or_none()
    if row is None:
        return None
    held, user = row
    if held.revoked_at is not None or held.expires_at <= now or user.disabled or user.role not in ROLES:
        return None
    if held.last_used_at is None or now - held.last_used_at >= TOUCH_EVERY:
        async with db.transaction() as session:
            await session.execute(update(ApiToken).where(ApiToken.id == held.id).values(last_used_at=now))
    scopes = frozenset(p for p in Permission if p.value in held.scopes)
    return Identity(
        user_id=user.id,
        username=user.username,
        role=user.role,
        permissions=scopes & ROLES[user.role],
        via="token",
        totp_enabled=user.totp_enabled,
        token_id=held.id,
        token_prefix=held.prefix,
    )
