"""Admin sign-in, sessions, users and API tokens.

Signing in and out are the only admin routes without a declared permission:
nobody holds one before signing in, and signing out needs only the session it ends.
"""

from typing import Annotated

from fastapi import APIRouter, Request, Response

from kaquan import identity
from kaquan.identity import Identity, NewSession
from kaquan.identity.errors import SessionRequired
from kaquan.identity.permissions import Permission
from kaquan.identity.schemas import (
    LoginOut,
    LoginRequest,
    MeOut,
    PasswordChange,
    PasswordChanged,
    TokenCreate,
    TokenCreated,
    TokenOut,
    TotpConfirm,
    TotpEnrolment,
    UserCreate,
    UserOut,
)
from kaquan.kit.bounds import BigRowId, Id
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import SESSION_COOKIE, Principal, RuntimeDep, check_csrf, client_ip, require, session_identity
from kaquan.web.security import secure_cookie

router = APIRouter(prefix="/admin/api", tags=["admin"], dependencies=JSON_ONLY)
COOKIE_PATH = "/admin"

Self = Annotated[Principal, require(Permission.ACCOUNT_SELF)]
UsersManage = Annotated[Principal, require(Permission.USERS_MANAGE)]


def set_session_cookie(request: Request, response: Response, opened: NewSession) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        opened.token,
        max_age=int(identity.ABSOLUTE_TIMEOUT.total_seconds()),
        path=COOKIE_PATH,
        secure=secure_cookie(request),
        httponly=True,
        samesite="strict",
    )


def own_sign_in(admin: Principal) -> Identity:
    """Own credentials change only from a password sign-in: a leaked token must not take the account."""
    user = admin.user
    if user.via != "session":
        raise SessionRequired("sign in with your password to change your own credentials")
    return user


@router.post("/session")
async def login(rt: RuntimeDep, request: Request, response: Response, body: LoginRequest) -> LoginOut:
    opened = await identity.login(
        rt.db,
        rt.keyring,
        rt.limiter,
        username=body.username,
        password=body.password,
        totp=body.totp,
        ip=client_ip(request),
    )
    set_session_cookie(request, response, opened)
    return LoginOut(
        username=opened.username, role=opened.role, csrf_token=opened.csrf_token, expires_at=opened.expires_at
    )


@router.delete("/session", status_code=204)
async def logout(rt: RuntimeDep, request: Request, response: Response) -> None:
    current = await session_identity(request, rt)
    if current is not None:
        await check_csrf(request, current)
        async with rt.db.transaction() as session:
            await identity.logout(session, current, ip=client_ip(request))
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


@router.get("/me")
async def me(admin: Self) -> MeOut:
    user = admin.user
    return MeOut(
        id=user.user_id,
        username=user.username,
        role=user.role,
        permissions=sorted(user.permissions),
        totp_enabled=user.totp_enabled,
        via=user.via,
    )


@router.post("/me/password")
async def change_password(
    rt: RuntimeDep, request: Request, response: Response, admin: Self, body: PasswordChange
) -> PasswordChanged:
    user = own_sign_in(admin)
    async with rt.db.transaction() as session:
        revoked, fresh = await identity.change_password(
            session, rt.limiter, user, body.current_password, body.new_password, ip=admin.ip
        )
    if fresh is not None:
        set_session_cookie(request, response, fresh)
    return PasswordChanged(sessions_revoked=revoked, csrf_token=fresh.csrf_token if fresh else None)


@router.post("/me/totp", status_code=201)
async def start_totp(rt: RuntimeDep, admin: Self) -> TotpEnrolment:
    user = own_sign_in(admin)
    async with rt.db.transaction() as session:
        secret, uri = await identity.start_totp(rt.db, session, rt.keyring, user, ip=admin.ip)
    return TotpEnrolment(secret=secret, otpauth_uri=uri)


@router.post("/me/totp/confirm", status_code=204)
async def confirm_totp(rt: RuntimeDep, admin: Self, body: TotpConfirm) -> None:
    user = own_sign_in(admin)
    async with rt.db.transaction() as session:
        await identity.confirm_totp(rt.db, session, rt.keyring, user, body.code, ip=admin.ip)


@router.get("/users")
async def list_users(rt: RuntimeDep, admin: UsersManage) -> list[UserOut]:
    async with rt.db.read() as session:
        return [UserOut.model_validate(u) for u in await identity.list_users(session)]


@router.post("/users", status_code=201)
async def create_user(rt: RuntimeDep, admin: UsersManage, body: UserCreate) -> UserOut:
    async with rt.db.transaction() as session:
        user = await identity.create_user(
            session, body.username, body.password, body.role, actor=admin.actor, ip=admin.ip
        )
        return UserOut.model_validate(user)


@router.post("/users/{user_id}/disable")
async def disable_user(rt: RuntimeDep, admin: UsersManage, user_id: Id) -> UserOut:
    async with rt.db.transaction() as session:
        return UserOut.model_validate(await identity.set_disabled(session, admin.user, user_id, True, ip=admin.ip))


@router.post("/users/{user_id}/enable")
async def enable_user(rt: RuntimeDep, admin: UsersManage, user_id: Id) -> UserOut:
    async with rt.db.transaction() as session:
        return UserOut.model_validate(await identity.set_disabled(session, admin.user, user_id, False, ip=admin.ip))


@router.post("/users/{user_id}/totp/reset")
async def reset_totp(rt: RuntimeDep, admin: UsersManage, user_id: Id) -> UserOut:
    async with rt.db.transaction() as session:
        return UserOut.model_validate(await identity.reset_totp(session, admin.user, user_id, ip=admin.ip))


@router.get("/tokens")
async def list_tokens(rt: RuntimeDep, admin: Self) -> list[TokenOut]:
    async with rt.db.read() as session:
        return [TokenOut.model_validate(t) for t in await identity.list_tokens(session, admin.user.user_id)]


@router.post("/tokens", status_code=201)
async def create_token(rt: RuntimeDep, admin: Self, body: TokenCreate) -> TokenCreated:
    async with rt.db.transaction() as session:
        row, token = await identity.create_token(
            session,
            admin.user.user_id,
            body.name,
            body.scopes,
            expires_in_days=body.expires_in_days,
            allowed=admin.permissions,
            actor=admin.actor,
            parent_id=admin.user.token_id,
            ip=admin.ip,
        )
        return TokenCreated(token=token, **TokenOut.model_validate(row).model_dump())


@router.delete("/tokens/{token_id}")
async def revoke_token(rt: RuntimeDep, admin: Self, token_id: BigRowId) -> TokenOut:
    async with rt.db.transaction() as session:
        row = await identity.revoke_token(session, admin.user.user_id, token_id, actor=admin.actor, ip=admin.ip)
        return TokenOut.model_validate(row)
