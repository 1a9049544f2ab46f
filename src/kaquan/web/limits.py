"""Request bodies are read only when they are small enough, and on authenticated routes only after credentials.

A pure ASGI middleware, in front of every route. FastAPI reads and parses a body
(JSON, or a multipart upload spooled to a temporary file) before any dependency
runs, so an admin route's own authentication would come after the bytes. Here:

- a body larger than its route's cap is refused with 413 `payload_too_large`: at once when
  `Content-Length` says so, else as soon as the streamed bytes pass the cap (chunked bodies),
  and the app's reading stops there. The cap is `KAQUAN_MAX_BODY_KB` (1 MiB) for every route
  and `KAQUAN_MAX_UPLOAD_MB` for the file uploads (code imports, leak tracing, statements);
- an unsafe request (POST, PUT, PATCH, DELETE) to the admin API or console that carries no
  credential at all (no `Authorization`, no session cookie) is refused with 401 before a byte
  of its body is read; so is a request to a signed API (open API, marketplaces) without the
  signature headers (the signature itself covers the body, so it is checked after reading it);
- an upload's credential is verified (token or session looked up, the route's permission
  held) before the multipart parser runs: 401 or 403 without reading the file.

What it does not do: check a session's CSRF token before the body (a form carries it in the
body; the route checks it), or stop a caller holding valid credentials from sending up to the cap.
"""

import re
from dataclasses import dataclass
from typing import NoReturn

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kaquan import identity as identity_service
from kaquan.channels import MissingSignatureHeader
from kaquan.channels.agents import request_signing
from kaquan.identity.permissions import Permission
from kaquan.kit.errors import DomainError, Forbidden, Unauthorized
from kaquan.runtime import Runtime
from kaquan.web.deps import SESSION_COOKIE
from kaquan.web.errors import error_response

ADMIN_PREFIX = "/admin/"
SIGNED_PREFIXES = ("/open/", "/marketplace/")
SIGNATURE_HEADERS = (
    request_signing.KEY_HEADER,
    request_signing.TIMESTAMP_HEADER,
    request_signing.NONCE_HEADER,
    request_signing.SIGNATURE_HEADER,
)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ANONYMOUS = frozenset(
    {
        ("POST", "/admin/login"),
        ("POST", "/admin/logout"),
        ("POST", "/admin/api/session"),
        ("DELETE", "/admin/api/session"),
    }
)


@dataclass(frozen=True)
class Upload:
    """A route taking a file: its larger cap applies only once the caller is known to hold `permission`."""

    path: re.Pattern[str]
    permission: Permission


UPLOADS = (
    Upload(re.compile(r"/admin(/api)?/skus/[^/]+/batches|/admin/skus/[^/]+/imports"), Permission.STOCK_WRITE),
    Upload(re.compile(r"/admin/api/leaks/trace|/admin/leaks"), Permission.LEAKS_TRACE),
    Upload(re.compile(r"/admin(/api)?/reconciliation/statements"), Permission.FINANCE_WRITE),
    Upload(re.compile(r"/admin(/api)?/products/[0-9]+/images"), Permission.CATALOG_WRITE),
    Upload(re.compile(r"/admin/marketplaces/order-files"), Permission.CHANNELS_WRITE),
)


class PayloadTooLarge(DomainError):
    """The request body is larger than this route accepts."""

    status = 413
    code = "payload_too_large"

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the request body is larger than {max_bytes} bytes")
        self.details = {"max_bytes": max_bytes}


class _Tripped(Exception):
    """Raised into the app when its body passes the cap: whatever it was doing with the body ends here."""


def upload_of(method: str, path: str) -> Upload | None:
    if method != "POST":
        return None
    return next((upload for upload in UPLOADS if upload.path.fullmatch(path)), None)


def _bearer(headers: Headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _refuse_uncredentialed(method: str, path: str, request: Request) -> None:
    """An unsafe admin or signed request that carries no credential of any kind is refused unread."""
    if method not in UNSAFE_METHODS or (method, path) in ANONYMOUS:
        return
    if path.startswith(ADMIN_PREFIX):
        if "authorization" not in request.headers and SESSION_COOKIE not in request.cookies:
            raise Unauthorized("a valid admin API token or session is required")
    elif path.startswith(SIGNED_PREFIXES):
        missing = [name for name in SIGNATURE_HEADERS if not request.headers.get(name)]
        if missing:
            raise MissingSignatureHeader(missing)


async def _verify_uploader(rt: Runtime, request: Request, upload: Upload) -> None:
    """The same lookup as the route's own authentication (deps.authenticate), done before the file is read."""
    if "authorization" in request.headers:
        token = _bearer(request.headers)
        found = await identity_service.authenticate_token(rt.db, token) if token else None
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        found = await identity_service.authenticate_session(rt.db, cookie) if cookie else None
    if found is None:
        raise Unauthorized("a valid admin API token or session is required")
    if upload.permission not in found.permissions:
        raise Forbidden(f"this needs the {upload.permission} permission", permission=upload.permission.value)


def _declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length", "")
    return int(value) if value.isascii() and value.isdigit() else None


class BodyLimits:
    """The middleware: `app.add_middleware(BodyLimits)`; caps come from the runtime's settings."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        rt: Runtime = scope["app"].state.runtime
        method, path = scope["method"], scope["path"]
        upload = upload_of(method, path)
        cap = rt.settings.max_upload_mb * 2**20 if upload else rt.settings.max_body_kb * 2**10
        try:
            declared = _declared_length(request.headers)
            if declared is not None and declared > cap:
                raise PayloadTooLarge(cap)
            _refuse_uncredentialed(method, path, request)
            if upload is not None:
                await _verify_uploader(rt, request, upload)
        except DomainError as refused:
            await _answer(request, refused, send)
            return
        await self._capped(scope, receive, send, request, cap)

    async def _capped(self, scope: Scope, receive: Receive, send: Send, request: Request, cap: int) -> None:
        received = 0
        tripped = False
        started = False

        def trip() -> NoReturn:
            nonlocal tripped
            tripped = True
            raise _Tripped

        async def capped_receive() -> Message:
            nonlocal received
            if tripped:
                trip()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    trip()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if tripped:  # the app answered an unread body (e.g. "cannot parse"): the answer is 413
                if not started and message["type"] == "http.response.start":
                    started = True
                    await _answer(request, PayloadTooLarge(cap), send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, guarded_send)
        except _Tripped:
            if not started:
                await _answer(request, PayloadTooLarge(cap), send)


async def _answer(request: Request, refused: DomainError, send: Send) -> None:
    response = error_response(request, refused.status, refused.code, refused.message, refused.details)
    response.headers["Connection"] = "close"  # the unread body must not be taken for the next request

    async def no_body() -> Message:
        return {"type": "http.disconnect"}

    await response(request.scope, no_body, send)
