"""Request-scoped access to the runtime and the admin bearer check."""

from typing import Annotated

from fastapi import Depends, Header, Request

from kaquan.inventory.delivery import Viewer
from kaquan.kit.crypto import same_digest
from kaquan.kit.errors import Unauthorized
from kaquan.kit.ratelimit import enforce
from kaquan.runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(runtime)]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def buyer(request: Request, reason: str) -> Viewer:
    """The buyer holding an order's lookup secret, as a viewer of its codes."""
    return Viewer("buyer", reason, client_ip(request))


async def throttle_lookup(request: Request, rt: Runtime) -> None:
    """Order lookups guess at secrets: a few per minute per IP, across processes when Redis is set."""
    await enforce(
        rt.limiter,
        f"lookup:{client_ip(request)}",
        limit=rt.settings.lookup_per_minute,
        window_s=60,
        what="order lookups",
    )


def admin_actor(rt: RuntimeDep, authorization: Annotated[str | None, Header()] = None) -> str:
    """The admin API's caller; until admin identities exist, one bearer token from KAQUAN_ADMIN_TOKEN."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token or not same_digest(token.encode(), rt.admin_token.encode()):
        raise Unauthorized("a valid admin bearer token is required")
    return "admin-token"


AdminDep = Annotated[str, Depends(admin_actor)]
