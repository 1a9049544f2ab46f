"""A sold-out flash sale's purchases answered before FastAPI: no routing, no Pydantic, no Redis, no database.

After an event sells out, nearly every request is a late buyer asking for a unit that is not
there, and the answer (`200 {"result":"sold_out"}`) is the same for all of them. This pure ASGI
middleware is the outermost layer of the app (`web.app.KaquanApp`), in front of
`SecurityMiddleware` and the whole FastAPI stack. What those would do for such a request it does
itself: the answer carries the request id and the security headers (`web.security`), it is
access-logged (by default as one summary line a second, `web.access_summary`), it is counted in
the request metrics under the purchase route, and no body larger than `KAQUAN_MAX_BODY_KB` is taken
(a larger one goes on to the stack, whose body cap answers 413).

It answers only what the purchase route would answer, and only when it knows it without a round
trip (`FlashSale.sold_out_at_once`: this process holds the event's gate frozen at sold out). Every
other request goes on to the stack, unchanged, its body replayed: a body that is not exactly the
route's JSON shape, a request without a device token (the route sets the cookie), a repeated
request (answered with what became of it), a buyer, address or device at its limit, and an address
past the per-address throttle as this process counts it (the route then counts it against the
throttle every process shares, and answers 429 past it). Risk control decides only on purchases
the gate admits, so a sold-out answer needs no decision.
"""

import logging
import time

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from kaquan.kit.logs import REQUEST_ID
from kaquan.kit.ratelimit import MemoryRateLimiter
from kaquan.runtime import Runtime
from kaquan.web.access_summary import SoldOutSummary
from kaquan.web.flash_api import DEVICE_COOKIE
from kaquan.web.flash_requests import (
    PURCHASE_ROUTE,
    buyer_token_of,
    cookies_of,
    purchase_of,
    purchase_request,
    read_body,
    replayed,
)
from kaquan.web.metrics import LATENCY, REQUESTS
from kaquan.web.security import access_log, arrived_over_tls, client_address, log_access, request_id_of, secured_headers

SOLD_OUT = orjson.dumps({"result": "sold_out"})
_ANSWER_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(SOLD_OUT)).encode())]
# The answer's headers but its request id, built once: over plain HTTP, and over TLS (with HSTS).
_SECURED = {tls: secured_headers(_ANSWER_HEADERS, tls=tls) for tls in (False, True)}


class FlashFastPath:
    """The outermost layer of the app (`web.app.KaquanApp`), in front of `SecurityMiddleware`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.summary = SoldOutSummary()
        self._throttle = MemoryRateLimiter()
        self._answered_count = REQUESTS.labels("POST", PURCHASE_ROUTE, "200")
        self._latency = LATENCY.labels("POST", PURCHASE_ROUTE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        purchase = purchase_request(scope)
        if purchase is None:
            await self.app(scope, receive, send)
            return
        rt, event_id, headers = purchase.rt, purchase.event_id, purchase.headers
        if not rt.flash.knows_sold_out(event_id) and not await rt.flash.sold_out_known(event_id):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        body, complete = await read_body(receive, purchase.cap)
        networks = rt.settings.trusted_proxy_networks()
        ip = client_address(scope, networks)
        if complete and purchase.sends_json and self._answered(headers, rt, event_id, body, ip):
            request_id = request_id_of(scope)
            answer_headers = [*_SECURED[arrived_over_tls(scope, networks)], (b"x-request-id", request_id.encode())]
            await send({"type": "http.response.start", "status": 200, "headers": answer_headers})
            await send({"type": "http.response.body", "body": SOLD_OUT})
            self._answered_count.inc()
            self._latency.observe(time.perf_counter() - started)
            if not access_log.isEnabledFor(logging.INFO):
                return
            if rt.settings.access_log_sold_out == "each":
                REQUEST_ID.set(request_id)
                log_access(scope, networks, 200)
            else:
                self.summary.add(scope["path"], ip)
            return
        await self.app(scope, replayed(body, complete, receive), send)

    def _answered(self, headers: dict[bytes, str], rt: Runtime, event_id: int, body: bytes, ip: str) -> bool:
        purchase = purchase_of(body)
        cookies = cookies_of(headers.get(b"cookie"))
        device = headers.get(b"x-device-token") or cookies.get(DEVICE_COOKIE)
        if purchase is None or not device:
            return False
        buyer, quantity, request_id = purchase
        limit = rt.settings.flash_per_ip_per_minute
        if self._throttle.hit_now(f"flash:{ip}", limit=limit, window_s=60):
            return False
        return rt.flash.sold_out_at_once(
            event_id,
            buyer,
            quantity,
            request_id,
            channel="shop",
            buyer_ip=ip,
            device=device,
            verified=rt.buyers.verified_contact(buyer_token_of(headers.get(b"authorization"), cookies)),
        )
