"""One error shape for every client: `{"error": {"code", "message", "details", "request_id"}}`, never a stack trace.

`request_id` is the id in the response's `X-Request-ID` header and on every log line the request wrote.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from kaquan.kit.errors import Busy, DomainError, RateLimited
from kaquan.kit.logs import REQUEST_ID
from kaquan.web.pages import render

log = logging.getLogger(__name__)
_JSON_PREFIXES = ("/api/", "/admin/api/", "/payments/", "/open/", "/marketplace/")
Pages = Callable[[Request, int, str, str, dict[str, Any]], Awaitable[Response | None]]
"""An area's own error pages (the console's): a page for a refusal on its paths, None to leave it to the shop's."""


def wants_html(request: Request) -> bool:
    if request.url.path.startswith(_JSON_PREFIXES):
        return False
    return "text/html" in request.headers.get("accept", "")


def error_response(request: Request, status: int, code: str, message: str, details: dict[str, object]) -> Response:
    headers = {}
    retry_after = details.get("retry_after")
    if isinstance(retry_after, int):
        headers["Retry-After"] = str(retry_after)
    if wants_html(request):
        return render(
            request,
            "error.html",
            {"status": status, "code": code, "message": message, "details": details},
            status=status,
            headers=headers,
        )
    body = {"error": {"code": code, "message": message, "details": details, "request_id": REQUEST_ID.get()}}
    return JSONResponse(body, status_code=status, headers=headers)


class AnswerError(BaseModel):
    """An error answer's one object (named apart from the per-order errors inside a batch answer)."""

    code: str
    message: str
    details: dict[str, Any]
    request_id: str


class ErrorBody(BaseModel):
    """The shape of every JSON error answer."""

    error: AnswerError


_FASTAPI_ERROR = "#/components/schemas/HTTPValidationError"


def _with_error_schema(node: Any, ref: str) -> Any:
    if isinstance(node, dict):
        return {key: ref if value == _FASTAPI_ERROR else _with_error_schema(value, ref) for key, value in node.items()}
    if isinstance(node, list):
        return [_with_error_schema(item, ref) for item in node]
    return node


def _describe_errors(app: FastAPI) -> None:
    """The published document shows the 422 answers as they are sent, not as FastAPI's default `{"detail": [...]}`."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
            error = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(error.pop("$defs", {}))
            schemas["ErrorBody"] = error
            app.openapi_schema = _with_error_schema(document, "#/components/schemas/ErrorBody")
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI, pages: Pages | None = None) -> None:
    _describe_errors(app)

    async def answer(request: Request, status: int, code: str, message: str, details: dict[str, Any]) -> Response:
        own = await pages(request, status, code, message, details) if pages is not None else None
        return own if own is not None else error_response(request, status, code, message, details)

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> Response:
        if isinstance(exc, RateLimited | Busy):
            exc.details["retry_after"] = exc.retry_after
        if exc.status >= 500:
            log.error("%s on %s: %s", exc.code, request.url.path, exc.message)
        return await answer(request, exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {"field": ".".join(str(part) for part in err.get("loc", ())), "message": err.get("msg", "")}
            for err in exc.errors()
        ]
        message = "; ".join(f"{p['field']}: {p['message']}" for p in problems) or "invalid request"
        return await answer(request, 422, "validation_error", message, {"problems": problems})

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
        code = codes.get(exc.status_code, "http_error")
        response = await answer(request, exc.status_code, code, str(exc.detail), {})
        response.headers.update(exc.headers or {})  # a 405's Allow, as RFC 9110 requires
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
        return await answer(request, 500, "internal_error", "something went wrong on our side", {})
