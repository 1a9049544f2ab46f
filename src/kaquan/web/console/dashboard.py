"""The console's home: today's stock levels and sales per SKU."""

from datetime import timedelta

from fastapi import Request
from fastapi.responses import Response

from kaquan.catalog import service as catalog
from kaquan.inventory import per_sku, stock
from kaquan.kit import clock
from kaquan.orders import service as orders
from kaquan.web.console.access import StockRead
from kaquan.web.console.rendering import HOME, console_router, page
from kaquan.web.deps import RuntimeDep

router = console_router()


@router.get(HOME)
async def dashboard(request: Request, rt: RuntimeDep, admin: StockRead) -> Response:
    start = clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    async with rt.db.read() as session:
        skus = {sku.id: sku for sku in await catalog.list_skus(session)}
        levels = per_sku(await stock(session))
        sales = await orders.delivered_between(session, start, start + timedelta(days=1))
    context = {"skus": skus, "levels": levels, "sales": sales, "day": start.date().isoformat()}
    return page(request, admin, "dashboard.html", context)
