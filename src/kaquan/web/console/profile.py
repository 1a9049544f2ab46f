"""The signed-in operator's own page: password, two-factor sign-in, and own API tokens with their download.

Every role may open it (`account.self`). Changing one's own password or two-factor sign-in needs a
password sign-in (`identity_api.own_sign_in`), as in the admin API: a leaked token must not take the
account. A new token's plaintext and the TOTP secret are answered once, on the page the post returns.
"""

from functools import partial
from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup

from kaquan import identity
from kaquan.identity.permissions import Permission
from kaquan.identity.schemas import PasswordChange, TokenCreate, TotpConfirm
from kaquan.kit.bounds import BigRowId
from kaquan.kit.errors import BadInput
from kaquan.kit.tables import Format, Table
from kaquan.web.console.rendering import console_router, form_model, page
from kaquan.web.deps import Principal, RuntimeDep, require
from kaquan.web.downloads import DOWNLOAD_RESPONSES, table_download
from kaquan.web.i18n import language, translator
from kaquan.web.i18n_identifiers import listed_scopes, scope_words
from kaquan.web.identity_api import own_sign_in, set_session_cookie
from kaquan.web.pages import local_time
from kaquan.web.payments import qr_svg

router = console_router()
Self = Annotated[Principal, require(Permission.ACCOUNT_SELF)]
ME = "/admin/me"
DEFAULT_TOKEN_DAYS = 90


def _back(done: str) -> RedirectResponse:
    return RedirectResponse(f"{ME}?done={done}", status_code=303)


@router.get(ME)
async def me_page(request: Request, rt: RuntimeDep, admin: Self, done: str = "") -> Response:
    async with rt.db.read() as session:
        tokens = await identity.list_tokens(session, admin.user.user_id)
    context = {
        "me": admin.user,
        "tokens": tokens,
        "scopes": sorted(admin.permissions),
        "scope_words": partial(scope_words, language(request)),
        "default_days": DEFAULT_TOKEN_DAYS,
        "when": local_time(request),
        "done": done,
    }
    return page(request, admin, "me.html", context)


@router.post(f"{ME}/password")
async def change_password(
    request: Request,
    rt: RuntimeDep,
    admin: Self,
    current_password: Annotated[str, Form(max_length=300)] = "",
    new_password: Annotated[str, Form(max_length=300)] = "",
    repeat_password: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """Every other session of the account ends; this browser gets a fresh one."""
    user = own_sign_in(admin)
    body = form_model(PasswordChange, current_password=current_password, new_password=new_password)
    if new_password != repeat_password:
        raise BadInput("the new password and its repetition differ", field="repeat_password")
    async with rt.db.transaction() as session:
        _, fresh = await identity.change_password(
            session, rt.limiter, user, body.current_password, body.new_password, ip=admin.ip
        )
    response = _back("password")
    if fresh is not None:
        set_session_cookie(request, response, fresh)
    return response


@router.post(f"{ME}/totp")
async def start_totp(request: Request, rt: RuntimeDep, admin: Self) -> Response:
    """A new authenticator secret, shown once as a QR code, its otpauth URI and the bare secret."""
    user = own_sign_in(admin)
    async with rt.db.transaction() as session:
        secret, uri = await identity.start_totp(rt.db, session, rt.keyring, user, ip=admin.ip)
    qr = Markup(qr_svg(uri))  # noqa: S704 - segno's own SVG of our URI
    return page(request, admin, "totp.html", {"secret": secret, "uri": uri, "qr": qr})


@router.post(f"{ME}/totp/confirm")
async def confirm_totp(rt: RuntimeDep, admin: Self, code: Annotated[str, Form(max_length=16)] = "") -> Response:
    user = own_sign_in(admin)
    body = form_model(TotpConfirm, code=code.strip())
    async with rt.db.transaction() as session:
        await identity.confirm_totp(rt.db, session, rt.keyring, user, body.code, ip=admin.ip)
    return _back("totp")


@router.get(f"{ME}/tokens.{{fmt}}", response_class=Response, responses=DOWNLOAD_RESPONSES)
async def tokens_download(request: Request, rt: RuntimeDep, admin: Self, fmt: Format) -> Response:
    lang = language(request)
    t = translator(lang)
    zone = rt.settings.zone()
    async with rt.db.read() as session:
        tokens = await identity.list_tokens(session, admin.user.user_id)
    header = [
        t("token.name"),
        t("token.prefix"),
        t("token.scopes"),
        t("field.status"),
        t("people.created_in", zone=zone.key),
        t("token.expires_in", zone=zone.key),
        t("token.last_used_in", zone=zone.key),
    ]
    rows = [
        [
            token.name,
            token.prefix,
            listed_scopes(lang, token.scopes),
            t("token.state.revoked" if token.revoked_at else "token.state.live"),
            token.created_at.astimezone(zone),
            token.expires_at.astimezone(zone),
            token.last_used_at.astimezone(zone) if token.last_used_at else None,
        ]
        for token in tokens
    ]
    return table_download(Table(t("token.title"), header, rows), fmt, f"tokens-{admin.user.username}")


@router.post(f"{ME}/tokens")
async def create_token(
    request: Request,
    rt: RuntimeDep,
    admin: Self,
    name: Annotated[str, Form(max_length=200)] = "",
    scopes: Annotated[list[str] | None, Form()] = None,
    expires_in_days: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """A token with some of the caller's own permissions; its plaintext is on this answer only."""
    body = form_model(
        TokenCreate,
        name=name.strip(),
        scopes=scopes or [],
        expires_in_days=expires_in_days.strip() or DEFAULT_TOKEN_DAYS,
    )
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
    shown = {"kind": "token", "name": row.name, "secret": token, "back": ME}
    return page(request, admin, "secret_once.html", shown)


@router.post(f"{ME}/tokens/{{token_id}}/revoke")
async def revoke_token(rt: RuntimeDep, admin: Self, token_id: BigRowId) -> Response:
    async with rt.db.transaction() as session:
        await identity.revoke_token(session, admin.user.user_id, token_id, actor=admin.actor, ip=admin.ip)
    return _back("token_revoked")
