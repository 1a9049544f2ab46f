"""API tokens: minting them within the creator's permissions, revoking them with their descendants, authenticating them.

`authenticate_token` runs on every admin request and is a transaction boundary
itself: it touches "last used" at most once a minute. Audit entries name token
prefixes and scopes; never a token or its hash.
"""

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit.service import record
from kaquan.identity.accounts import TOUCH_EVERY, Identity, role_permissions, user_by_id
from kaquan.identity.credentials import new_token, token_digest
from kaquan.identity.errors import ScopeNotAllowed, TokenNotFound
from kaquan.identity.models import AdminUser, ApiToken
from kaquan.identity.permissions import ROLES, Permission
from kaquan.kit import clock
from kaquan.kit.db import Database
from kaquan.kit.errors import Unauthorized

TOKEN_KIND = "t"  # noqa: S105 (the letter in "kqt_", not a secret)


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
    user = await user_by_id(session, user_id)
    now = clock.now()
    expires_at = now + timedelta(days=expires_in_days)
    wanted = frozenset(scopes)
    granted = allowed & role_permissions(user.role)
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


async def revoke_tokens(session: AsyncSession, user_id: int) -> int:
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
