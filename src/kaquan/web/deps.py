"""Request-scoped access to the runtime, the caller's IP and the admin permission check."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from kaquan import identity as identity_service
from kaquan.identity import Identity
from kaquan.identity.errors import CsrfFailed
from kaquan.identity.permissions import Permission
from kaquan.inventory import Viewer
from kaquan.kit.crypto import same_digest
from kaquan.kit.errors import Forbidden, Unauthorized
from kaquan.kit.ratelimit import enforce
from kaquan.orders.service import LookupGuard
from kaquan.runtime import Runtime
from kaquan.web.security import client_ip as client_ip  # re-exported: routes import it from deps


async def runtime(request: Request) -> Runtime:
    """Async on purpose: FastAPI runs a plain `def` dependency in a worker thread, on every request."""
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(runtime)]


def buyer(request: Request, reason: str) -> Viewer:
    """The buyer holding an order's lookup secret, as a viewer of its codes."""
    return Viewer("buyer", reason, client_ip(request))


def lookup_guard(rt: Runtime) -> LookupGuard:
    """The check every route makes of a lookup secret: wrong secrets are throttled per IP, across processes
    when Redis is set (built per request, so it always uses the runtime's current limiter)."""
    return LookupGuard(rt.order_keys, rt.limiter, rt.settings.lookup_per_minute)


async def throttle_orders(request: Request, rt: Runtime) -> None:
    """Shop order attempts, per IP an hour: the per-client hold caps bound what is held; this bounds the churn."""
    await enforce(
        rt.limiter,
        f"orders:{client_ip(request)}",
        limit=rt.settings.orders_per_ip_per_hour,
        window_s=3600,
        what="order attempts",
    )


AuthorizationHeader = Annotated[str | None, Header()]
SESSION_COOKIE = "kq_admin"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class Principal:
    """An authenticated admin caller: the name audit entries carry, and what it may do."""

    actor: str
    permissions: frozenset[Permission]
    ip: str | None = None
    identity: Identity | None = None

    @property
    def user(self) -> Identity:
        """The signed-in admin user (every Principal built by `Require` has one)."""
        if self.identity is None:
            raise Unauthorized("an admin user is required")
        return self.identity

    @property
    def account(self) -> str:
        """The user behind the caller, for counters: never the token or session, which are free to mint."""
        return f"admin_user:{self.user.user_id}"


async def check_csrf(request: Request, identity: Identity) -> None:
    """A cookie rides along on cross-site requests; the CSRF token, read from the page, does not."""
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(_FORMS):
        field = (await request.form()).get(CSRF_FIELD)
        sent = field if isinstance(field, str) else None
    expected = identity.csrf_token or ""
    if not sent or not expected or not same_digest(sent.encode(), expected.encode()):
        raise CsrfFailed(f"this needs the session's CSRF token in the {CSRF_HEADER} header or a {CSRF_FIELD} field")


async def session_identity(request: Request, rt: Runtime) -> Identity | None:
    """The identity of the session cookie, if it names a live session."""
    cookie = request.cookies.get(SESSION_COOKIE)
    return await identity_service.authenticate_session(rt.db, cookie) if cookie else None


async def authenticate(request: Request, rt: Runtime) -> Identity:
    """An API token (`Authorization: Bearer`) or a session cookie (plus CSRF token on unsafe methods)."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        found = (
            await identity_service.authenticate_token(rt.db, token) if scheme.lower() == "bearer" and token else None
        )
        if found is None:
            raise Unauthorized("a valid admin API token or session is required")
        return found
    found = await session_identity(request, rt)
    if found is None:
        raise Unauthorized("a valid admin API token or session is required")
    if request.method in _UNSAFE:
        await check_csrf(request, found)
    return found


class Require:
    """The dependency admitting only callers holding `permission`; every admin route declares one.

    401 `unauthorized` without a live session or token, 403 `csrf_failed` for a cookie-borne
    unsafe request without the session's CSRF token, 403 `forbidden` without the permission
    (a token holds its scopes within its user's role).
    """

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self, request: Request, rt: RuntimeDep, authorization: AuthorizationHeader = None) -> Principal:
        identity = await authenticate(request, rt)
        principal = Principal(identity.actor, identity.permissions, client_ip(request), identity)
        # Kept for the console's error pages, which show a refusal inside the signed-in caller's own frame.
        request.state.principal = principal
        if self.permission not in identity.permissions:
            raise Forbidden(f"this needs the {self.permission} permission", permission=self.permission.value)
        return principal


def require(permission: Permission) -> Any:
    return Depends(Require(permission))
