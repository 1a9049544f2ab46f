"""What every console page shares: the page frame, error pages, and the route class that turns refusals into pages."""

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from kaquan.identity.permissions import Permission
from kaquan.kit.errors import BadInput, DomainError, RateLimited, Unauthorized
from kaquan.web.deps import Principal
from kaquan.web.i18n import LANGUAGE_NAMES, language, translator
from kaquan.web.i18n_identifiers import refusal_words
from kaquan.web.pages import render
from kaquan.web.shop_words import MESSAGES as SHOP_MESSAGES
from kaquan.web.shop_words import shop_translator

LOGIN_PATH = "/admin/login"
HOME = "/admin/"
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
    """The refusal in the console's language where the shop's words know its code, else ""."""
    if f"error.{code}" not in SHOP_MESSAGES[lang]:
        return ""
    values = {name: value for name, value in details.items() if isinstance(value, int | str)}
    try:
        return shop_translator(lang)(f"error.{code}", **({"seconds": 1, "max": ""} | values))
    except (KeyError, IndexError):  # a sentence wanting a value these details lack: the message alone
        return ""


def error_page(request: Request, status: int, code: str, message: str, details: dict[str, Any]) -> Response:
    headers = {"Retry-After": str(details["retry_after"])} if isinstance(details.get("retry_after"), int) else {}
    lang = language(request)
    worded = _worded(lang, code, details)
    generic = refusal_words(lang, status) if not worded and status not in (401, 403, 404) else ""
    context = {
        "status": status,
        "code": code,
        "message": message,
        "worded": worded,
        "generic": generic,
        "details": details,
    }
    return page(request, None, "error.html", context, status=status, headers=headers)


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
                    return RedirectResponse(f"{LOGIN_PATH}?next={quote(_here(request), safe='')}", status_code=303)
                return error_page(request, exc.status, exc.code, exc.message, exc.details)
            except DomainError as exc:
                if not wants_html(request):
                    raise
                if isinstance(exc, RateLimited):
                    exc.details["retry_after"] = exc.retry_after
                return error_page(request, exc.status, exc.code, exc.message, exc.details)
            except RequestValidationError as exc:
                if not wants_html(request):
                    raise
                message = "; ".join(_problem(err) for err in exc.errors())
                return error_page(request, 422, "validation_error", message, {})

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
