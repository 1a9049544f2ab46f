"""The admin console: server-rendered pages under /admin, in Chinese and English.

Each page handler authenticates (`require(Permission.X)`, the same check as the admin
API: a session cookie, and on POST the session's CSRF token in the `csrf_token` field),
calls service functions and renders. Signing in, signing out and the sign-in page are
the only console routes without a permission. A browser without a live session is sent
to the sign-in page; any other refusal is shown as a console page (`rendering.ConsoleRoute`).
A client that does not ask for HTML (a script with a bearer token) gets the usual JSON error instead.

One module per area; `router` holds all their routes, in this order, as one flat table
(the route-permission tests walk it).
"""

from kaquan.web.console import (
    agents,
    audit,
    catalog,
    categories,
    channel_prices,
    dashboard,
    flash,
    leaks,
    marketplace_files,
    marketplaces,
    order_list,
    orders,
    product_editor,
    reconciliation,
    redemption,
    refunds,
    risk_models,
    risk_review,
    settlement,
    signin,
    stock,
    stock_import,
    users,
    warehouses,
)
from kaquan.web.console.rendering import console_router, refusal_page

router = console_router()
for area in (
    signin,
    dashboard,
    catalog,
    product_editor,
    categories,
    channel_prices,
    stock,
    order_list,
    stock_import,
    orders,
    refunds,
    risk_review,
    reconciliation,
    audit,
    leaks,
    redemption,
    agents,
    settlement,
    flash,
    warehouses,
    marketplaces,
    marketplace_files,
    users,
    risk_models,
):
    router.routes.extend(area.router.routes)

__all__ = ["refusal_page", "router"]
