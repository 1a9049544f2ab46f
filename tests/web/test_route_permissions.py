"""Every admin route declares the one permission it needs; a new route without one fails here."""

from fastapi.routing import APIRoute
from tests.support.permissions import PUBLIC_ADMIN_ROUTES

from kaquan.identity.permissions import ROLES, Permission
from kaquan.web.app import ROUTERS
from kaquan.web.deps import Require


def _key(route: APIRoute) -> tuple[str, str]:
    [method] = route.methods or {""}
    return method, route.path


def _admin_routes() -> list[APIRoute]:
    routes = [route for router in ROUTERS for route in router.routes]
    return [
        r
        for r in routes
        if isinstance(r, APIRoute) and r.path.startswith("/admin") and _key(r) not in PUBLIC_ADMIN_ROUTES
    ]


def _declared(route: APIRoute) -> list[Permission]:
    return [dep.call.permission for dep in route.dependant.dependencies if isinstance(dep.call, Require)]


def test_every_admin_route_declares_exactly_one_permission() -> None:
    routes = _admin_routes()
    assert routes, "the admin API has routes"
    undeclared = [f"{sorted(r.methods or ())} {r.path}" for r in routes if len(_declared(r)) != 1]
    assert undeclared == []


def test_the_public_admin_routes_exist_and_declare_nothing() -> None:
    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]
    public = {_key(r): _declared(r) for r in routes if _key(r) in PUBLIC_ADMIN_ROUTES}
    assert public == {key: [] for key in PUBLIC_ADMIN_ROUTES}


def test_every_permission_belongs_to_the_owner_and_the_auditor_only_reads() -> None:
    assert ROLES["owner"] == frozenset(Permission)
    # Apart from its own sign-in (password, two-factor, own tokens), the auditor only reads.
    assert all(p.value.endswith(".read") for p in ROLES["auditor"] - {Permission.ACCOUNT_SELF})
    assert Permission.AUDIT_READ in ROLES["auditor"]
    assert all(Permission.ACCOUNT_SELF in permissions for permissions in ROLES.values())
