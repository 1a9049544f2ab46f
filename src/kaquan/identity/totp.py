"""Two-factor sign-in: a TOTP secret per admin user, sealed under a named key.

Audit entries never carry a TOTP secret or a code.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit.service import record
from kaquan.identity.accounts import Identity, audit_target, user_by_id
from kaquan.identity.credentials import new_totp_secret, totp_match, totp_uri
from kaquan.identity.errors import TotpInvalid
from kaquan.identity.models import AdminUser
from kaquan.kit import clock
from kaquan.kit.crypto import KeyRing, SecretBox
from kaquan.kit.db import Database
from kaquan.kit.errors import Conflict
from kaquan.kit.keys import named_key

TOTP_KEY = "identity.totp"


def _totp_bound(user_id: int) -> bytes:
    """Associated data: a sealed secret copied onto another user's row does not open."""
    return f"identity_users/{user_id}/totp".encode()


async def _totp_box(db: Database, session: AsyncSession, keyring: KeyRing) -> SecretBox:
    return SecretBox(await named_key(db, session, keyring, TOTP_KEY))


async def totp_secret(db: Database, session: AsyncSession, keyring: KeyRing, user: AdminUser) -> str:
    if user.totp_sealed is None:
        raise TotpInvalid("two-factor sign-in was not started for this account")
    return (await _totp_box(db, session, keyring)).open(user.totp_sealed, _totp_bound(user.id))


async def start_totp(
    db: Database, session: AsyncSession, keyring: KeyRing, identity: Identity, *, ip: str | None = None
) -> tuple[str, str]:
    """A new TOTP secret for the caller, pending until a code confirms it; returns (secret, otpauth URI)."""
    user = await user_by_id(session, identity.user_id)
    if user.totp_enabled:
        raise Conflict("two-factor sign-in is already on; an owner can reset it", user_id=user.id)
    secret = new_totp_secret()
    user.totp_sealed = (await _totp_box(db, session, keyring)).seal(secret, _totp_bound(user.id))
    user.totp_last_step = None
    await session.flush()
    await record(session, identity.actor, "identity.totp.started", target=audit_target(user.id), ip=ip)
    return secret, totp_uri(secret, user.username)


async def confirm_totp(
    db: Database, session: AsyncSession, keyring: KeyRing, identity: Identity, code: str, *, ip: str | None = None
) -> None:
    user = await user_by_id(session, identity.user_id)
    if user.totp_enabled:
        raise Conflict("two-factor sign-in is already on", user_id=user.id)
    secret = await totp_secret(db, session, keyring, user)
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
        target=audit_target(user.id),
        before={"totp_enabled": False},
        after={"totp_enabled": True},
        ip=ip,
    )


async def reset_totp(session: AsyncSession, by: Identity, user_id: int, *, ip: str | None = None) -> AdminUser:
    """Turn two-factor sign-in off for a user who lost the authenticator (an owner's act)."""
    user = await user_by_id(session, user_id)
    before = {"totp_enabled": user.totp_enabled}
    user.totp_enabled = False
    user.totp_sealed = None
    user.totp_last_step = None
    await session.flush()
    await record(
        session,
        by.actor,
        "identity.totp.reset",
        target=audit_target(user_id),
        before=before,
        after={"totp_enabled": False},
        ip=ip,
    )
    return user
