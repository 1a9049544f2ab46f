"""Signing in and out of the console, and switching its language: the only console routes without a permission."""

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from kaquan import identity
from kaquan.identity.errors import LoginFailed, TotpRequired
from kaquan.kit.errors import RateLimited
from kaquan.web.console.rendering import HOME, LOGIN_PATH, console_router, page, safe_next
from kaquan.web.deps import SESSION_COOKIE, RuntimeDep, check_csrf, client_ip, session_identity
from kaquan.web.i18n import LANG_COOKIE, LANGUAGES
from kaquan.web.identity_api import COOKIE_PATH, set_session_cookie
from kaquan.web.security import form_token_matches, new_form_token, set_form_token

LOGIN_CSRF_COOKIE = "kq_login"

router = console_router()


def _login_page(
    request: Request, *, next_url: str, error: str | None = None, status: int = 200, retry_after: int = 0
) -> Response:
    """The sign-in form with a fresh double-submit token: there is no session yet to hold a CSRF token."""
    token = new_form_token()
    context = {"login_csrf": token, "next": safe_next(next_url), "error": error, "retry_after": retry_after}
    response = page(request, None, "login.html", context, status=status)
    set_form_token(response, request, token, cookie=LOGIN_CSRF_COOKIE, path=LOGIN_PATH)
    return response


@router.get(LOGIN_PATH)
async def login_page(request: Request, next: str = HOME, signed_out: bool = False) -> Response:
    return _login_page(request, next_url=next, error="login.signed_out" if signed_out else None)


@router.post(LOGIN_PATH)
async def login(
    request: Request,
    rt: RuntimeDep,
    username: Annotated[str, Form(max_length=128)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    totp: Annotated[str, Form(max_length=16)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2000)] = HOME,
) -> Response:
    if not form_token_matches(request, csrf_token, cookie=LOGIN_CSRF_COOKIE):
        return _login_page(request, next_url=next, error="login.csrf", status=403)
    try:
        opened = await identity.login(
            rt.db,
            rt.keyring,
            rt.limiter,
            username=username,
            password=password,
            totp=totp.strip() or None,
            ip=client_ip(request),
        )
    except TotpRequired:
        return _login_page(request, next_url=next, error="login.totp_required", status=401)
    except LoginFailed:
        return _login_page(request, next_url=next, error="login.failed", status=401)
    except RateLimited as exc:
        response = _login_page(request, next_url=next, error="login.throttled", status=429, retry_after=exc.retry_after)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(request, response, opened)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=LOGIN_PATH)
    return response


@router.post("/admin/logout")
async def logout(request: Request, rt: RuntimeDep) -> Response:
    current = await session_identity(request, rt)
    if current is not None:
        await check_csrf(request, current)
        async with rt.db.transaction() as session:
            await identity.logout(session, current, ip=client_ip(request))
    response = RedirectResponse(f"{LOGIN_PATH}?signed_out=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


@router.get("/lang/{code}")
async def switch_language(code: str, next: str = HOME) -> Response:
    """A link, not a form: it only sets a display preference, so a forged click changes nothing of value."""
    response = RedirectResponse(safe_next(next), status_code=303)
    if code in LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600, path="/", samesite="lax")
    return response
