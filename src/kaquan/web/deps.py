"""Request-scoped access to the runtime, the caller's IP and the admin permission check."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request

from kaquan.identity.permissions import ROLES, Permission
from kaquan.inventory.delivery import Viewer
from kaquan.kit.crypto import same_digest
from kaquan.kit.errors import Forbidden, Unauthorized
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


AuthorizationHeader = Annotated[str | None, Header()]


@dataclass(frozen=True)
class Principal:
    """An authenticated admin caller: the name audit entries carry, and what it may do."""

    actor: str
    permissions: frozenset[Permission]
    ip: str | None = None


class Require:
    """The dependency admitting only callers holding `permission`; every admin route declares one.

    Until admin identities land, the one bearer token from KAQUAN_ADMIN_TOKEN acts as the owner.
    """

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def __call__(self, request: Request, rt: RuntimeDep, authorization: AuthorizationHeader = None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token or not same_digest(token.encode(), rt.admin_token.encode()):
            raise Unauthorized("a valid admin bearer token is required")
        principal = Principal("admin-token", ROLES["owner"], client_ip(request))
        if self.permission not in principal.permissions:
            raise Forbidden(f"this needs the {self.permission} permission", permission=self.permission.value)
        return principal


def require(permission: Permission) -> Any:
    return Depends(Require(permission))
