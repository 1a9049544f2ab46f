"""Every admin route declares the one permission it needs; a new route without one fails here."""

from fastapi.routing import APIRoute

from kaquan.identity.permissions import ROLES, Permission
from kaquan.web.app import ROUTERS
from kaquan.web.deps import Require


def _admin_routes() -> list[APIRoute]:
    routes = [route for router in ROUTERS for route in router.routes]
    return [r for r in routes if isinstance(r, APIRoute) and r.path.startswith("/admin")]


def _declared(route: APIRoute) -> list[Permission]:
    return [dep.call.permission for dep in route.dependant.dependencies if isinstance(dep.call, Require)]


def test_every_admin_route_declares_exactly_one_permission() -> None:
    routes = _admin_routes()
    assert routes, "the admin API has routes"
    undeclared = [f"{sorted(r.methods or ())} {r.path}" for r in routes if len(_declared(r)) != 1]
    assert undeclared == []


def test_every_permission_belongs_to_the_owner_and_the_auditor_only_reads() -> None:
    assert ROLES["owner"] == frozenset(Permission)
    assert all(p.value.endswith(".read") for p in ROLES["auditor"])
