"""Every admin route × every role: a role's token is refused with 403 exactly when the role lacks the
permission the route declares (read from its `Require`), whatever the route does once admitted.
"""

import re

import httpx
from fastapi.routing import APIRoute
from tests.support.identity import HeadersFor, given_user
from tests.support.permissions import PUBLIC_ADMIN_ROUTES

from kaquan import identity
from kaquan.identity.permissions import ROLES, Permission
from kaquan.runtime import Runtime
from kaquan.web.app import ROUTERS, create_app
from kaquan.web.deps import Require


def admin_routes() -> list[tuple[str, str, Permission]]:
    found = []
    for router in ROUTERS:
        for route in router.routes:
            if not isinstance(route, APIRoute) or not route.path.startswith("/admin"):
                continue
            for method in sorted(route.methods or ()):
                if (method, route.path) in PUBLIC_ADMIN_ROUTES:
                    continue
                [permission] = [d.call.permission for d in route.dependant.dependencies if isinstance(d.call, Require)]
                found.append((method, route.path, permission))
    return found


async def test_each_role_is_refused_exactly_the_routes_whose_permission_it_lacks(
    rt: Runtime, headers_for: HeadersFor
) -> None:
    # Id 1 of users and tokens belongs to a bystander, so "/users/1/disable" and "/tokens/1" never hit a caller.
    victim = await given_user(rt, "bystander", "support")
    async with rt.db.transaction() as session:
        await identity.create_token(
            session, victim.id, "x", [Permission.ORDERS_READ], expires_in_days=1, allowed=ROLES["support"], actor="t"
        )
    headers = {role: await headers_for(role) for role in ROLES}
    routes = admin_routes()
    assert len(routes) >= 20
    transport = httpx.ASGITransport(app=create_app(rt=rt), raise_app_exceptions=False)
    wrong: list[str] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        for method, path, permission in routes:
            url = re.sub(r"\{[^}]+\}", "1", path)
            for role, role_headers in headers.items():
                response = await client.request(method, url, headers=role_headers)
                refused = response.status_code == 403
                if refused and response.json()["error"]["code"] != "forbidden":
                    wrong.append(f"{role} {method} {path}: 403 {response.json()['error']['code']}")
                elif refused != (permission not in ROLES[role]):
                    wrong.append(f"{role} {method} {path} ({permission}): {response.status_code}")

    assert wrong == []


async def test_a_token_scoped_to_one_permission_opens_only_the_routes_needing_it(
    rt: Runtime, headers_for: HeadersFor
) -> None:
    only = Permission.STOCK_READ
    reader = await headers_for("owner", scopes=[only])
    transport = httpx.ASGITransport(app=create_app(rt=rt), raise_app_exceptions=False)
    wrong: list[str] = []
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as client:
        for method, path, permission in admin_routes():
            response = await client.request(method, re.sub(r"\{[^}]+\}", "1", path), headers=reader)
            if (response.status_code == 403) != (permission != only):
                wrong.append(f"{method} {path} ({permission}): {response.status_code}")

    assert wrong == []
