"""A live flash sale's purchases taken without FastAPI's stack: the route's own code, called from plain ASGI.

In a storm's first second every buyer is on the slow path: the event is not sold out yet, so each
purchase goes through the throttle, the gate and risk control. py-spy over such a storm (2026-12-07)
put half of each purchase's time in FastAPI and Starlette around the route: the middleware wrappers,
routing, dependency solving and Pydantic's validation and serialization. This layer sits inside
`SecurityMiddleware` (which still adds the request id and the security headers and writes the access
log) and in front of FastAPI: for a purchase of the route's exact JSON shape from a client that sent
its device token, it runs what the route runs (`flash_api.buy`) and answers with the route's status,
body and headers, errors included (`errors.error_response`, as the app's handlers do). It counts the
answer in the request metrics under the purchase route.

Anything else goes on to the route, unchanged, its body replayed: a body of another shape (the route's
422), a client without a device token (the route sets the cookie), a body past the cap (413), a content
type that is not JSON (415).
"""

import logging
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from kaquan.flashsale.schemas import PurchaseIn
from kaquan.kit.errors import Busy, DomainError, RateLimited
from kaquan.runtime import Runtime
from kaquan.web.errors import error_response
from kaquan.web.flash_api import buy, device_of, reply_of
from kaquan.web.flash_requests import (
    PURCHASE_ROUTE,
    purchase_of,
    purchase_request,
    read_body,
    replayed,
)
from kaquan.web.metrics import LATENCY, REQUESTS

log = logging.getLogger(__name__)


class FlashAdmissionPath:
    """Pure ASGI, between `SecurityMiddleware` and FastAPI (`web.app.KaquanApp`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._latency = LATENCY.labels("POST", PURCHASE_ROUTE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = purchase_request(scope)
        if target is None or not target.sends_json:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        body, complete = await read_body(receive, target.cap)
        purchase = purchase_of(body) if complete else None
        request = Request(scope, replayed(body, complete, receive))
        device = device_of(request)  # read as the route reads it
        if purchase is None or not device:
            await self.app(scope, request.receive, send)
            return
        buyer, quantity, request_id = purchase
        response = await _answer(
            request,
            target.rt,
            target.event_id,
            PurchaseIn.model_construct(buyer=buyer, quantity=quantity, request_id=request_id),
            device=device,
        )
        await response(scope, request.receive, send)
        REQUESTS.labels("POST", PURCHASE_ROUTE, str(response.status_code)).inc()
        self._latency.observe(time.perf_counter() - started)


async def _answer(request: Request, rt: Runtime, event_id: int, purchase: PurchaseIn, *, device: str) -> Response:
    """The route's answer to the purchase, or the app's error answer, as FastAPI would have sent them."""
    try:
        answer = await buy(request, rt, event_id, purchase, device=device, device_new=False)
    except DomainError as exc:
        details: dict[str, Any] = exc.details
        if isinstance(exc, RateLimited | Busy):
            details["retry_after"] = exc.retry_after
        if exc.status >= 500:
            log.error("%s on %s: %s", exc.code, request.url.path, exc.message)
        return error_response(request, exc.status, exc.code, exc.message, details)
    except Exception as exc:  # as the app's last-resort handler: logged, and a 500 that gives nothing away
        log.error("unhandled %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
        return error_response(request, 500, "internal_error", "something went wrong on our side", {})
    status, out, headers = reply_of(answer)
    return Response(out.model_dump_json(exclude_none=True), status, headers, media_type="application/json")
