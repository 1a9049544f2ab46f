"""Security headers on every response, a redacted access log, and the one place a caller's address is derived.

The client address and the scheme come from the TCP peer, unless that peer is a
reverse proxy named in `KAQUAN_TRUSTED_PROXIES`: then X-Forwarded-For is read
from the right, skipping our own proxies, and the first address not ours is the
client (everything left of it was written by the client and proves nothing).
Throttles, risk, allowlists and the audit trail all read `client_ip`.
"""

import logging
import random
import re
import secrets
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kaquan.kit.crypto import same_digest
from kaquan.kit.logs import REQUEST_ID

Networks = Sequence[IPv4Network | IPv6Network]

# No inline script or style anywhere: the templates load /static files only (tests/web/test_security_headers.py).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none';"
    " base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
HSTS = "max-age=31536000"
# no-referrer: pay tokens and order numbers travel in paths, and no page needs the Referer header.
_ALWAYS = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
_CSP_HEADER = b"content-security-policy"
_CSP_VALUE = CSP.encode()
_HSTS_VALUE = HSTS.encode()

access_log = logging.getLogger("kaquan.access")
REDACTED = "***"
# Path segments that are bearer secrets: a payment's pay token, a flash-sale ticket (it answers with a lookup secret).
# Each behind the prefix every such path starts with, so that most paths are not searched at all.
_SECRET_SEGMENTS = (
    ("/pay/", re.compile(r"^(/pay/[^/]+/)[^/]+")),
    ("/api/flash/tickets/", re.compile(r"^(/api/flash/tickets/)[^/]+")),
)
# Query parameters that never carry a secret or personal data; every other value is logged as ***.
_PLAIN_PARAMETERS = frozenset({"limit", "before_id", "sku", "warehouse", "tier", "action", "layout"})


def _networks(scope: Scope) -> Networks:
    app = scope.get("app")
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    return runtime.settings.trusted_proxy_networks() if runtime is not None else ()


def _trusted(host: str, networks: Networks) -> bool:
    try:
        address = ip_address(host)
    except ValueError:
        return False
    return any(address in network for network in networks)


def _header(scope: Scope, name: bytes) -> str:
    return ",".join(value.decode("latin-1") for key, value in scope.get("headers", ()) if key == name)


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def client_address(scope: Scope, networks: Networks) -> str:
    """The rightmost address in the forwarding chain that is not one of our trusted proxies."""
    client = _peer(scope)
    if not networks or not _trusted(client, networks):
        return client
    hops = [hop.strip() for hop in _header(scope, b"x-forwarded-for").split(",") if hop.strip()]
    for hop in reversed(hops):
        try:
            client = str(ip_address(hop))
        except ValueError:  # garbage from the far side: the last proxy that handed it on is all we know
            break
        if not _trusted(client, networks):
            break
    return client


def arrived_over_tls(scope: Scope, networks: Networks) -> bool:
    """TLS to us directly, or to a trusted proxy that says so in X-Forwarded-Proto (its own, rightmost, value)."""
    if scope.get("scheme") in ("https", "wss"):
        return True
    if not networks or not _trusted(_peer(scope), networks):
        return False
    protos = [proto.strip().lower() for proto in _header(scope, b"x-forwarded-proto").split(",") if proto.strip()]
    return bool(protos) and protos[-1] == "https"


def client_ip(request: Request) -> str:
    """The caller's address, the only one throttles, risk checks, allowlists and the audit trail use."""
    return client_address(request.scope, _networks(request.scope))


def is_tls(request: Request) -> bool:
    return arrived_over_tls(request.scope, _networks(request.scope))


def secure_cookie(request: Request) -> bool:
    """Whether a cookie set on this answer is marked Secure: the request came over TLS, or the shop's public
    address is https (a TLS proxy in front that is not among the trusted proxies)."""
    settings = request.app.state.runtime.settings
    return is_tls(request) or settings.public_url.startswith("https://")


def new_form_token() -> str:
    return secrets.token_urlsafe(32)


def set_form_token(response: Response, request: Request, token: str, *, cookie: str, path: str) -> None:
    """The cookie half of a double-submit token, for forms posted before any session holds a CSRF token."""
    response.set_cookie(cookie, token, path=path, httponly=True, samesite="strict", secure=secure_cookie(request))


def form_token_matches(request: Request, offered: str, *, cookie: str) -> bool:
    """Whether a form's token is the one its cookie holds: a page of another site can post the form, not read it."""
    expected = request.cookies.get(cookie, "")
    return bool(offered) and bool(expected) and same_digest(offered.encode(), expected.encode())


def redacted_target(path: str, query: str) -> str:
    """The path and query as an access log may show them: no tokens, no secrets, no searched contacts."""
    for prefix, pattern in _SECRET_SEGMENTS:
        if path.startswith(prefix):
            path = pattern.sub(rf"\g<1>{REDACTED}", path)
    if not query:
        return path
    shown = [
        f"{quote(name, safe='')}={quote(value, safe='') if name in _PLAIN_PARAMETERS else REDACTED}"
        for name, value in parse_qsl(query, keep_blank_values=True)
    ]
    return f"{path}?{'&'.join(shown)}"


class RedactUvicornAccess(logging.Filter):
    """For servers started by plain `uvicorn …`: its access log's path argument, redacted like ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path, _, query = args[2].partition("?")
            record.args = (args[0], args[1], redacted_target(path, query), args[3], args[4])
        return True


UVICORN_FILTER = RedactUvicornAccess()


_REQUEST_ID_SHAPE = re.compile(rb"[A-Za-z0-9._-]{8,64}")


def request_id_of(scope: Scope) -> str:
    """The caller's `X-Request-ID` when it is a plain token (a proxy's or a client's), else a new one.

    A new id names a request in logs and error reports and guards nothing, so it comes from the fast
    Mersenne Twister rather than the operating system's random source (a system call per request).
    """
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id" and _REQUEST_ID_SHAPE.fullmatch(value):
            return str(value.decode())
    return f"{random.getrandbits(64):016x}"


def secured_headers(headers: list[tuple[bytes, bytes]], *, tls: bool) -> list[tuple[bytes, bytes]]:
    """`headers` and the security headers they lack (HSTS only over TLS); the request id is the caller's to add."""
    present = {name.lower() for name, _ in headers}
    secured = headers + [(name, value) for name, value in _ALWAYS if name not in present]
    if _CSP_HEADER not in present:
        secured.append((_CSP_HEADER, _CSP_VALUE))
    if tls:
        secured.append((b"strict-transport-security", _HSTS_VALUE))
    return secured


def log_access(scope: Scope, networks: Networks, status: int) -> None:
    """The request's access-log line: the client, the method, the redacted path and query, the status."""
    access_log.info(
        '%s "%s %s" %d',
        client_address(scope, networks),
        scope.get("method", ""),
        redacted_target(scope.get("path", ""), scope.get("query_string", b"").decode("latin-1")),
        status,
    )


class SecurityMiddleware:
    """Adds the security headers to every HTTP response (pages, API, static files, errors) and logs it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        networks = _networks(scope)
        tls = arrived_over_tls(scope, networks)
        status = 0
        request_id = request_id_of(scope)
        REQUEST_ID.set(request_id)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": secured_headers(headers, tls=tls)}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                log_access(scope, networks, status)
