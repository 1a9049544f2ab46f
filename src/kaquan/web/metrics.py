"""Prometheus metrics at `/metrics`: requests by route, latency, errors, and what the database says now.

Request counters and latency histograms are kept per route template (`/orders/{number}`, never the
number itself), so label sets stay bounded whatever clients send. The gauges that describe state —
outbox backlog, stock per SKU, the worker's heartbeat, database pool use — are read at scrape time.

`/metrics` is off unless KAQUAN_METRICS_TOKEN is set; Prometheus then sends it as a bearer token.
With `kaquan serve --workers N` each process answers for itself (scrape them one by one).
"""

import hmac
import time
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kaquan.catalog import service as catalog
from kaquan.inventory import available_by_sku
from kaquan.kit import clock, outbox
from kaquan.kit.errors import NotFound, Unauthorized
from kaquan.operations import last_beat
from kaquan.runtime import Runtime
from kaquan.web.deps import RuntimeDep

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "kaquan_http_requests",
    "HTTP requests answered, by route template and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "kaquan_http_request_duration_seconds",
    "Time to answer, by route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge("kaquan_outbox_pending", "Outbox events still to run", registry=REGISTRY)
OUTBOX_GIVEN_UP = Gauge("kaquan_outbox_given_up", "Outbox events that gave up retrying", registry=REGISTRY)
OUTBOX_OLDEST = Gauge("kaquan_outbox_oldest_age_seconds", "Age of the oldest waiting outbox event", registry=REGISTRY)
STOCK = Gauge("kaquan_stock_available", "Units available to sell, per SKU", ["sku"], registry=REGISTRY)
WORKER_AGE = Gauge(
    "kaquan_worker_heartbeat_age_seconds", "Seconds since a worker last ran a pass (-1: never)", registry=REGISTRY
)
POOL_IN_USE = Gauge(
    "kaquan_db_pool_in_use", "Database connections checked out of this process's pool", registry=REGISTRY
)
UNMATCHED = "unmatched"

router = APIRouter(include_in_schema=False)


class RequestMetrics:
    """Counts and times every HTTP request by the route it matched (pure ASGI: no body buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            route = getattr(scope.get("route"), "path", None) or _mounted(scope) or UNMATCHED
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)


def _mounted(scope: Scope) -> str | None:
    """`/static` for a file under it: a mount's prefix, not the file's path."""
    root = scope.get("root_path", "")
    return str(root) if root else None


async def _refresh_state_gauges(rt: Runtime) -> None:
    async with rt.db.read() as session:
        waiting = await outbox.backlog(session)
        available = await available_by_sku(session)
        codes = {sku.id: sku.code for sku in await catalog.list_skus(session)}
        beat_at = await last_beat(session)
    OUTBOX_PENDING.set(waiting.pending)
    OUTBOX_GIVEN_UP.set(waiting.given_up)
    OUTBOX_OLDEST.set(waiting.oldest_age_s)
    STOCK.clear()
    for sku_id, units in available.items():
        STOCK.labels(codes.get(sku_id, str(sku_id))).set(units)
    WORKER_AGE.set((clock.now() - beat_at).total_seconds() if beat_at is not None else -1)
    POOL_IN_USE.set(rt.db.connections_in_use())


def _authorized(rt: Runtime, authorization: str | None) -> None:
    expected = rt.settings.metrics_token
    if not expected:
        raise NotFound("metrics are off: set KAQUAN_METRICS_TOKEN to turn them on")
    offered = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(offered.encode(), expected.encode()):
        raise Unauthorized("/metrics wants the bearer token set in KAQUAN_METRICS_TOKEN")


@router.get("/metrics")
async def metrics(
    request: Request, rt: RuntimeDep, authorization: Annotated[str | None, Header(max_length=512)] = None
) -> Response:
    _authorized(rt, authorization)
    await _refresh_state_gauges(rt)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
