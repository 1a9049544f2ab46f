"""The signed-in buyer's JSON API: who is signed in, their order history, sign out.

Sign in as on the pages: `POST /api/buyers/verify/start {contact}`, then
`POST /api/buyers/verify/confirm {contact, code}`, which answers the buyer token and
sets the `kq_buyer` cookie. Every route here takes that token as
`Authorization: Bearer kqb1…` or the cookie, and answers 401 `buyer_sign_in_required`
without a live one. `GET /api/buyer/orders` lists the orders placed while signed in
with this verified contact, newest first, `limit` (1-50) at a time; pass the answer's
`next_before_id` as `before_id` for older ones. Guest orders are never listed: they
are found by number and lookup secret (`POST /api/orders/lookup`).
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from kaquan.catalog import service as catalog
from kaquan.kit.bounds import INT64_MAX
from kaquan.kit.errors import Unauthorized
from kaquan.orders import service as orders
from kaquan.runtime import Runtime
from kaquan.web.buyers_api import clear_buyer_cookie, signed_in
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import RuntimeDep

router = APIRouter(prefix="/api/buyer", tags=["buyer account"], dependencies=JSON_ONLY)


class BuyerSignInRequired(Unauthorized):
    code = "buyer_sign_in_required"

    def __init__(self) -> None:
        super().__init__("sign in first: POST /api/buyers/verify/start, then /api/buyers/verify/confirm")


class BuyerOut(BaseModel):
    contact: str = Field(description="the verified contact: lowercase e-mail or +<country><number>")


class BuyerOrderOut(BaseModel):
    number: str
    status: str = Field(description=f"one of {', '.join(orders.ORDER_STATUSES)}")
    sku: str = Field(description="the SKU's code")
    item: str = Field(description="the SKU's name")
    quantity: int
    total_minor: int
    currency: str
    created_at: datetime
    delivered_at: datetime | None
    url: str = Field(description="the order page; it opens for this buyer while signed in")


class BuyerOrdersOut(BaseModel):
    orders: list[BuyerOrderOut]
    next_before_id: int | None = Field(description="pass as before_id for older orders; null: no more")


def _buyer(request: Request, rt: Runtime) -> str:
    contact = signed_in(request, rt)
    if contact is None:
        raise BuyerSignInRequired()
    return contact


@router.get("/me")
async def me(request: Request, rt: RuntimeDep) -> BuyerOut:
    return BuyerOut(contact=_buyer(request, rt))


@router.get("/orders")
async def my_orders(
    request: Request,
    rt: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=orders.MAX_SEARCH_RESULTS)] = orders.HISTORY_PAGE,
    before_id: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
) -> BuyerOrdersOut:
    contact = _buyer(request, rt)
    async with rt.db.read() as session:
        page = await orders.history(session, contact, limit=limit + 1, before_id=before_id)
        skus = {sku_id: await catalog.get_sku(session, sku_id) for sku_id in {order.sku_id for order in page}}
    shown = page[:limit]
    base = rt.settings.public_url.rstrip("/")
    return BuyerOrdersOut(
        orders=[
            BuyerOrderOut(
                number=order.number,
                status=order.status,
                sku=skus[order.sku_id].code,
                item=skus[order.sku_id].name,
                quantity=order.quantity,
                total_minor=order.total_minor,
                currency=order.currency,
                created_at=order.created_at,
                delivered_at=order.delivered_at,
                url=f"{base}/orders/{order.number}",
            )
            for order in shown
        ],
        next_before_id=shown[-1].id if len(page) > limit else None,
    )


@router.post("/sign-out", status_code=204)
async def sign_out(request: Request) -> Response:
    """Delete the `kq_buyer` cookie. A token kept elsewhere stays valid until it expires (docs/buyers.md)."""
    response = Response(status_code=204)
    clear_buyer_cookie(response, request)
    return response
