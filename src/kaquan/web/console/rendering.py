"""What every console page shares: the page frame, error pages, and the route class that turns refusals into pages.

A refusal a signed-in operator meets is a page inside the console's own frame (the menu, the user, the
language switch), in the page's language, with the request id to quote; a browser without a session is
sent to sign in; a script gets the JSON error of every other route.
"""

import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from kaquan.identity.permissions import Permission
from kaquan.kit.errors import BadInput, DomainError, RateLimited, Unauthorized
from kaquan.kit.logs import REQUEST_ID
from kaquan.web.deps import SESSION_COOKIE, Principal, client_ip, session_identity
from kaquan.web.i18n import LANGUAGE_NAMES, language, translator
from kaquan.web.i18n_identifiers import console_refusal_words, refusal_words, scope_words
from kaquan.web.pages import render
from kaquan.web.shop_words import MESSAGES as SHOP_MESSAGES
from kaquan.web.shop_words import shop_translator

log = logging.getLogger(__name__)
LOGIN_PATH = "/admin/login"
HOME = "/admin/"
API_PREFIX = "/admin/api/"
INTERNAL_MESSAGE = "something went wrong on our side"
HTTP_CODES = {403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
Model = TypeVar("Model", bound=BaseModel)


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def safe_next(target: str, default: str = HOME) -> str:
    """Only a path on this site: never `//host` or a scheme, so a link cannot bounce a browser elsewhere."""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return default


def _here(request: Request) -> str:
    """Where a language switch returns to: this page, or the dashboard after a form post."""
    if request.method != "GET":
        return HOME
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def page(
    request: Request,
    admin: Principal | None,
    name: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    lang = language(request)
    identity_ = admin.identity if admin is not None else None
    full = {
        "t": translator(lang),
        "lang": lang,
        "languages": LANGUAGE_NAMES,
        "admin": admin,
        "can": admin.permissions if admin is not None else frozenset(),
        "P": Permission,
        "csrf": identity_.csrf_token if identity_ is not None and identity_.csrf_token else "",
        "here": _here(request),
        **context,
    }
    return render(
        request,
        f"console/{name}",
        full,
        status=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _worded(lang: str, code: str, details: dict[str, Any]) -> str:
    """The refusal in the console's language: its own sentence, else the shop's for that code, else ""."""
    if own := console_refusal_words(lang, code):
        return own
    if f"error.{code}" not in SHOP_MESSAGES[lang]:
        return ""
    values = {name: value for name, value in details.items() if isinstance(value, int | str)}
    try:
        return shop_translator(lang)(f"error.{code}", **({"seconds": 1, "max": ""} | values))
    except (KeyError, IndexError):  # a sentence wanting a value these details lack: the message alone
        return ""


async def signed_in(request: Request) -> Principal | None:
    """Who is signed in, for the frame of an error page: the caller the permission check met, else the session's."""
    known = getattr(request.state, "principal", None)
    if isinstance(known, Principal):
        return known
    rt = getattr(request.app.state, "runtime", None)
    if rt is None or SESSION_COOKIE not in request.cookies:
        return None
    try:
        identity = await session_identity(request, rt)
    except Exception:  # the failure being reported may be the database's own: the page then goes without the frame
        log.warning("no session lookup for the error page on %s", request.url.path, exc_info=True)
        return None
    return None if identity is None else Principal(identity.actor, identity.permissions, client_ip(request), identity)


def _back(request: Request) -> str:
    """Where "back" goes: the console page the browser came from, else the dashboard."""
    came_from = request.headers.get("referer", "")
    origin = f"{request.url.scheme}://{request.url.netloc}"
    if not came_from.startswith(origin + "/admin/"):
        return HOME
    path = safe_next(came_from[len(origin) :])
    return HOME if path == _here(request) or path.startswith(LOGIN_PATH) else path


async def error_page(request: Request, status: int, code: str, message: str, details: dict[str, Any]) -> Response:
    """A refusal as a console page, in the signed-in caller's frame when there is one."""
    headers = {"Retry-After": str(details["retry_after"])} if isinstance(details.get("retry_after"), int) else {}
    lang = language(request)
    worded = _worded(lang, code, details)
    generic = refusal_words(lang, status) if not worded and status not in (401, 403, 404) else ""
    permission = details.get("permission") if code == "forbidden" else None
    context = {
        "status": status,
        "code": code,
        "message": message,
        "worded": worded,
        "generic": generic,
        "details": details,
        "needed": (permission, scope_words(lang, permission)) if isinstance(permission, str) else None,
        "request_id": REQUEST_ID.get(),
        "back": _back(request),
    }
    admin = await signed_in(request) if status != 401 else None
    return page(request, admin, "error.html", context, status=status, headers=headers)


def _to_sign_in(request: Request) -> Response:
    return RedirectResponse(f"{LOGIN_PATH}?next={quote(_here(request), safe='')}", status_code=303)


async def refusal_page(
    request: Request, status: int, code: str, message: str, details: dict[str, Any]
) -> Response | None:
    """A refusal no console route raised (an unknown page under /admin/, a crash) as a console page; None elsewhere.

    Installed as the app's page hook (`errors.install`): the admin API and the shop keep their own answers.
    """
    path = request.url.path
    if not path.startswith("/admin/") or path.startswith(API_PREFIX) or not wants_html(request):
        return None
    if request.method == "GET" and status < 500 and await signed_in(request) is None:
        return _to_sign_in(request)
    return await error_page(request, status, code, message, details)


class ConsoleRoute(APIRoute):
    """Turns refusals into pages for browsers: no session → the sign-in page, anything else → an error page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthorized as exc:
                if not wants_html(request):
                    raise
                if request.method == "GET":
                    return _to_sign_in(request)
                return await error_page(request, exc.status, exc.code, exc.message, exc.details)
            except DomainError as exc:
                if not wants_html(request):
                    raise
                if isinstance(exc, RateLimited):
                    exc.details["retry_after"] = exc.retry_after
                return await error_page(request, exc.status, exc.code, exc.message, exc.details)
            except RequestValidationError as exc:
                if not wants_html(request):
                    raise
                message = "; ".join(_problem(err) for err in exc.errors())
                return await error_page(request, 422, "validation_error", message, {})
            except HTTPException as exc:
                if not wants_html(request):
                    raise
                code = HTTP_CODES.get(exc.status_code, "http_error")
                return await error_page(request, exc.status_code, code, str(exc.detail), {})
            except Exception as exc:
                if not wants_html(request):
                    raise
                log.error("unhandled %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
                return await error_page(request, 500, "internal_error", INTERNAL_MESSAGE, {})

        return guarded


def _problem(err: Any) -> str:
    return f"{'.'.join(str(part) for part in err.get('loc', ()))}: {err.get('msg', '')}"


def form_model(cls: type[Model], **data: Any) -> Model:
    """A service input built from form fields; a bad field is a clear 400, like any bad input."""
    try:
        return cls(**data)
    except ValidationError as exc:
        raise BadInput("; ".join(_problem(err) for err in exc.errors())) from None


def console_router() -> APIRouter:
    """A router for one console area: its routes render refusals as pages and answer HTML."""
    return APIRouter(route_class=ConsoleRoute, tags=["console"], default_response_class=HTMLResponse)
