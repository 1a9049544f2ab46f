"""The buyer's flash-sale API: the event, a purchase, and polling a ticket.

`POST /api/flash/{event_id}/purchase` answers
- 200 `{"result": "won", "order_no", "lookup_secret", "pay_url", "quantity", "total_minor", "currency",
  "pay_before"}`: the codes are reserved for the order until `pay_before`; pay at `pay_url`
  (the normal payment path), then see the codes with the order number and lookup secret;
- 200 `{"result": "sold_out"}` or `{"result": "limit_reached"}`, answered by the gate at once;
- 202 `{"result": "queued", "ticket"}` when the commit takes longer than a short wait, or at once
  when many purchases are queued (a storm): poll `GET /api/flash/tickets/{ticket}` after the
  answer's Retry-After (same answers; 202 while queued);
- 503 `busy` with Retry-After when the queue is full or the sale cannot take purchases;
- 400 `invalid_quantity` / `bad_input`, 422 `validation_error`, 403 `channel_not_allowed`,
  404 `event_not_found`, 409 `event_not_started` / `event_ended` / `idempotency_conflict`,
  429 `rate_limited` (per IP, with Retry-After),
  403 `risk_declined` / `challenge_required` (risk control, `web.risk_gate`: solve the challenge in
  `details.challenge` and send the purchase again with the solution in `X-Risk-Solution`); risk
  decides only on purchases the gate admitted: a sold-out or limit answer gives nothing away.
Once the event is sold out, `web.flash_fast` answers `sold_out` in front of this router.
Retrying with the same `request_id` never buys twice.

A purchase is bound to the client's device token: the `kq_device` cookie (set on the first
purchase when absent) or an `X-Device-Token` header (22–128 characters of A-Z a-z 0-9 - _, for
clients without cookies). Only the same device gets a retried purchase's order or opens its
ticket; from any other device the same body is a new purchase of that device's own. An event
with `requires_verified_buyer` needs a buyer token (`Authorization: Bearer kqb1…` or the
`kq_buyer` cookie, from `POST /api/buyers/verify/confirm`): 401 `buyer_verification_required`
without one. Wins are also limited per address and per device (200 `limit_reached`).
"""

import secrets

from fastapi import APIRouter, Request, Response
from redis.exceptions import RedisError

from kaquan.flashsale.answers import Answer
from kaquan.flashsale.errors import TicketNotFound
from kaquan.flashsale.schemas import PublicEventOut, PurchaseIn, PurchaseOut
from kaquan.kit.bounds import Id
from kaquan.kit.errors import Busy
from kaquan.kit.ratelimit import enforce
from kaquan.runtime import Runtime
from kaquan.web.buyers_api import buyer_token
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import RuntimeDep, client_ip
from kaquan.web.risk_gate import screen_flash_purchase
from kaquan.web.security import secure_cookie

router = APIRouter(prefix="/api/flash", tags=["flashsale"], dependencies=JSON_ONLY)
QUEUED_RETRY_AFTER_S = 1
DEVICE_COOKIE = "kq_device"
DEVICE_HEADER = "X-Device-Token"
DEVICE_COOKIE_MAX_AGE_S = 365 * 24 * 3600


def device_of(request: Request) -> str | None:
    """The device token the client sent: the header (clients without cookies) first, else the cookie."""
    return request.headers.get(DEVICE_HEADER) or request.cookies.get(DEVICE_COOKIE)


def _new_device(request: Request, response: Response, rt: Runtime) -> str:
    token = secrets.token_urlsafe(32)
    response.set_cookie(
        DEVICE_COOKIE,
        token,
        max_age=DEVICE_COOKIE_MAX_AGE_S,
        path="/api/flash",
        secure=secure_cookie(request),
        httponly=True,
        samesite="lax",
    )
    return token


async def _throttle(request: Request, rt: Runtime) -> None:
    try:
        await enforce(
            rt.limiter,
            f"flash:{client_ip(request)}",
            limit=rt.settings.flash_per_ip_per_minute,
            window_s=60,
            what="flash-sale requests",
        )
    except RedisError as exc:  # a burst past the connection pool, or Redis away: shed load, never a 500
        raise Busy("the flash sale is busy; try again", retry_after=1) from exc


def reply_of(answer: Answer) -> tuple[int, PurchaseOut, dict[str, str]]:
    """The status, body and extra headers a purchase's or a ticket's answer is sent with."""
    headers = {"Retry-After": str(QUEUED_RETRY_AFTER_S)} if answer.result == "queued" else {}
    body = PurchaseOut(
        result=answer.result,
        ticket=answer.ticket,
        order_no=answer.order_no,
        lookup_secret=answer.lookup_secret,
        pay_url=answer.pay_url,
        quantity=answer.quantity,
        total_minor=answer.total_minor,
        currency=answer.currency,
        pay_before=answer.pay_before,
    )
    return (202 if answer.result == "queued" else 200), body, headers


def _reply(answer: Answer, response: Response) -> PurchaseOut:
    status, body, headers = reply_of(answer)
    response.status_code = status
    response.headers.update(headers)
    return body


async def buy(
    request: Request, rt: Runtime, event_id: int, purchase: PurchaseIn, *, device: str, device_new: bool
) -> Answer:
    """What the purchase route does once it knows the client's device token (`web.flash_admission` calls it too)."""
    await _throttle(request, rt)
    verified = rt.buyers.verified_contact(buyer_token(request))

    async def screen() -> None:
        await screen_flash_purchase(
            request,
            rt,
            event_id,
            buyer=purchase.buyer,
            quantity=purchase.quantity,
            device=device,
            device_new=device_new,
            verified=verified,
        )

    return await rt.flash.purchase(
        event_id,
        purchase.buyer,
        purchase.quantity,
        purchase.request_id,
        channel="shop",
        buyer_ip=client_ip(request),
        device=device,
        verified=verified,
        screen=screen,
    )


@router.get("/{event_id}")
async def event(request: Request, rt: RuntimeDep, event_id: Id) -> PublicEventOut:
    await _throttle(request, rt)
    return await rt.flash.public_event(event_id)


@router.post(
    "/{event_id}/purchase",
    response_model_exclude_none=True,
    responses={202: {"model": PurchaseOut, "description": "queued: poll the ticket"}},
)
async def purchase(request: Request, response: Response, rt: RuntimeDep, event_id: Id, body: PurchaseIn) -> PurchaseOut:
    sent = device_of(request)
    device = sent or _new_device(request, response, rt)
    return _reply(await buy(request, rt, event_id, body, device=device, device_new=sent is None), response)


@router.get(
    "/tickets/{ticket}",
    response_model_exclude_none=True,
    responses={202: {"model": PurchaseOut, "description": "still queued"}},
)
async def ticket(request: Request, response: Response, rt: RuntimeDep, ticket: str) -> PurchaseOut:
    await _throttle(request, rt)
    device = device_of(request)
    if device is None:
        raise TicketNotFound()
    return _reply(await rt.flash.ticket(ticket, device=device), response)
