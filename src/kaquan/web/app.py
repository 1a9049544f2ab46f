"""The ASGI application: storefront, shop API, admin API and console, payment endpoints."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from kaquan import runtime as runtime_module
from kaquan import worker
from kaquan.channels.adapters import load_adapters
from kaquan.kit.config import Settings, get_settings
from kaquan.runtime import Runtime
from kaquan.web import (
    admin_api,
    callbacks_api,
    channels_api,
    console,
    custody_api,
    errors,
    flash_admin_api,
    flash_api,
    identity_api,
    limits,
    pay_dev,
    redeem_api,
    shop,
    shop_api,
    warehouses_api,
)

log = logging.getLogger(__name__)
ROUTERS = (
    flash_api.router,  # first: a flash sale's buyers send more requests than everyone else together
    shop.router,
    shop_api.router,
    pay_dev.router,
    admin_api.router,
    identity_api.router,
    custody_api.router,
    redeem_api.router,
    channels_api.router,
    callbacks_api.router,
    warehouses_api.router,
    flash_admin_api.router,
    console.router,
)


def create_app(settings: Settings | None = None, *, rt: Runtime | None = None, run_worker: bool = False) -> FastAPI:
    """Build the app; with `rt` the caller owns the runtime (tests), else the app opens its own."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = rt is None
        app.state.runtime = rt or await runtime_module.start(settings or get_settings())
        stop = asyncio.Event()
        background = asyncio.create_task(worker.run_forever(app.state.runtime, stop)) if run_worker else None
        try:
            yield
        finally:
            stop.set()
            if background is not None:
                await background
            if own:
                await app.state.runtime.close()

    app = FastAPI(title="kaquan", version="0.1.0", lifespan=lifespan)
    if rt is not None:
        app.state.runtime = rt
    errors.install(app)
    app.add_middleware(limits.BodyLimits)  # refuses oversized and uncredentialed bodies unread
    # Channel adapters first: routes are matched in order, and agents' machines send the most requests.
    for adapter in load_adapters():
        app.include_router(adapter.router)
    app.mount("/static", StaticFiles(directory=str(Path(__file__).parent / "static")), name="static")
    for router in ROUTERS:
        app.include_router(router)
    return app
