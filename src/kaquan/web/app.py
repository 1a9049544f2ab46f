"""The ASGI application: storefront, shop API, admin API and console, payment endpoints."""

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from kaquan import runtime as runtime_module
from kaquan import worker
from kaquan.channels import load_adapters
from kaquan.kit import heap
from kaquan.kit.config import Settings, get_settings
from kaquan.runtime import Runtime
from kaquan.web import (
    account,
    account_api,
    admin_api,
    admission,
    buyers_api,
    callbacks_api,
    captcha,
    catalog_api,
    channels_api,
    console,
    custody_api,
    errors,
    flash_admin_api,
    flash_admission,
    flash_api,
    flash_fast,
    head,
    health,
    identity_api,
    limits,
    metrics,
    open_api,
    pay_dev,
    payments,
    reconciliation_api,
    redeem_api,
    refunds_api,
    risk_api,
    security,
    settlement_api,
    shop,
    shop_api,
    shop_catalog,
    warehouses_api,
)
from kaquan.web.pages import render

log = logging.getLogger(__name__)
ROUTERS = (
    flash_api.router,  # first: a flash sale's buyers send more requests than everyone else together
    buyers_api.router,
    account.router,
    account_api.router,
    shop_catalog.router,
    shop.router,
    captcha.router,
    shop_api.router,
    payments.router,
    pay_dev.router,
    admin_api.router,
    catalog_api.router,
    identity_api.router,
    custody_api.router,
    redeem_api.router,
    channels_api.router,
    callbacks_api.router,
    warehouses_api.router,
    flash_admin_api.router,
    refunds_api.router,
    reconciliation_api.router,
    settlement_api.router,
    risk_api.router,
    console.router,
    health.router,
    metrics.router,
)


# Swagger UI as the fastapi-offline package ships it: the API docs work offline and fetch nothing from a CDN.
SWAGGER_UI_ASSETS = files("fastapi_offline") / "static"
DEV_GATEWAY_WARNING = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!! THE DEV PAYMENT GATEWAY IS ON (KAQUAN_DEV_GATEWAY=1).
!!! Anyone holding an order's pay link can mark it paid and take its codes for free.
!!! For local trials and tests only: never on a server that sells real codes.
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"""
SIMULATORS_WARNING = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!! PAYMENT PROVIDER SIMULATORS ARE ON (KAQUAN_GATEWAY_SIMULATORS=1): %s.
!!! Buyers "pay" on simulated Alipay / WeChat Pay / Stripe pages under /sim/ and no money moves.
!!! For demos and tests only: never on a server that sells real codes.
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"""
NO_GATEWAY_WARNING = (
    "no payment gateway is configured: the shop and flash sales refuse orders (payment_unavailable);"
    " agents' prepaid orders still work. Local trials: KAQUAN_DEV_GATEWAY=1."
)


def announce_payment(rt: Runtime) -> None:
    """Say loudly, at start, how this server takes money: through the dev gateway (free codes) or not at all."""
    if rt.dev is not None:
        log.warning(DEV_GATEWAY_WARNING)
    if rt.simulations:
        log.warning(SIMULATORS_WARNING, ", ".join(s.mount_path for s in rt.simulations))
    if rt.gateway is None:
        log.warning(NO_GATEWAY_WARNING)


def mount_simulators(app: FastAPI, rt: Runtime) -> None:
    """Serve each provider simulator under its own path, as its provider's site would be (demos and tests)."""
    for simulation in rt.simulations:
        app.mount(simulation.mount_path, simulation.provider.app)


@functools.cache
def built_routes() -> tuple[tuple[BaseRoute, ...], tuple[BaseRoute, ...]]:
    """The channel adapters' routes and the modules' (`ROUTERS`), built once a process.

    FastAPI works out every parameter's validator as a route is included, about a second for kaquan's
    routes; they hold nothing of the app that includes them (an endpoint finds the runtime through its
    request), so every app this process builds shares them: a server builds one, the test suite one a test.
    """

    def routes_of(routers: Iterable[APIRouter]) -> tuple[BaseRoute, ...]:
        combined = APIRouter()
        for router in routers:
            combined.include_router(router)
        return tuple(combined.routes)

    return routes_of(adapter.router for adapter in load_adapters()), routes_of(ROUTERS)


class KaquanApp(FastAPI):
    sale_concurrency = Settings.model_fields["sale_concurrency"].default
    _front: flash_fast.FlashFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # In front of FastAPI's own __call__ (its telemetry check) and Starlette's, so that a sold-out answer of
        # a flash sale costs none of it (web.flash_fast); then SecurityMiddleware, outside everything else, so
        # that even the 500 page of Starlette's ServerErrorMiddleware carries the headers; inside it, a live flash
        # sale's purchases taken without FastAPI's stack (web.flash_admission), and HEAD taken as GET (web.head).
        if self._front is None:
            inner = flash_admission.FlashAdmissionPath(head.HeadAsGet(super().__call__))
            self._front = flash_fast.FlashFastPath(security.SecurityMiddleware(inner))
        scope["app"] = self
        await self._front(scope, receive, send)

    def build_middleware_stack(self) -> ASGIApp:
        # The sale path's queue (web.admission) first, before any work is done for a request.
        return admission.SaleAdmission(super().build_middleware_stack(), self.sale_concurrency)

    def flush_access_summary(self) -> None:
        """Log the sold-out answers counted but not yet logged (the server is stopping)."""
        if self._front is not None:
            self._front.summary.flush()


def create_app(settings: Settings | None = None, *, rt: Runtime | None = None, run_worker: bool = False) -> FastAPI:
    """Build the app; with `rt` the caller owns the runtime (tests), else the app opens its own."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = rt is None
        app.state.runtime = rt or await runtime_module.start(settings or get_settings())
        if own:
            announce_payment(app.state.runtime)
            mount_simulators(app, app.state.runtime)
            await app.state.runtime.warm()
            heap.settle()  # a server's own process: everything it keeps is built now
        stop = asyncio.Event()
        background = asyncio.create_task(worker.run_forever(app.state.runtime, stop)) if run_worker else None
        try:
            yield
        finally:
            if isinstance(app, KaquanApp):
                app.flush_access_summary()
            stop.set()
            if background is not None:
                await background
            if own:
                await app.state.runtime.close()

    app = KaquanApp(title="kaquan", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.sale_concurrency = (rt.settings if rt is not None else settings or get_settings()).sale_concurrency
    logging.getLogger("uvicorn.access").addFilter(security.UVICORN_FILTER)
    if rt is not None:
        app.state.runtime = rt
        mount_simulators(app, rt)
    errors.install(app, pages=console.refusal_page)
    app.add_middleware(limits.BodyLimits)  # refuses oversized and uncredentialed bodies unread
    app.add_middleware(metrics.RequestMetrics)  # outside the body limits: their refusals are counted too
    # Channel adapters first: routes are matched in order, and agents' machines send the most requests.
    channel_routes, module_routes = built_routes()
    app.router.routes.extend(channel_routes)
    open_api.publish_callbacks(app)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static")
    app.mount("/docs/assets", StaticFiles(directory=str(SWAGGER_UI_ASSETS)), name="docs-assets")
    app.router.routes.extend(module_routes)

    @app.get("/docs", include_in_schema=False)
    async def api_docs(request: Request) -> HTMLResponse:
        return render(request, "docs.html", {})

    return app
