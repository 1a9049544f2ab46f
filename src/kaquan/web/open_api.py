"""The open API for agents (代理商): signed requests, prepaid orders, codes encrypted for the agent.

The contract, with the signing algorithm and worked examples, is docs/open-api.md.
"""

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kaquan.channels import agent_crypto, ordering
from kaquan.channels.adapters import Adapter
from kaquan.channels.auth import AgentCaller
from kaquan.channels.ordering import AgentOrder
from kaquan.inventory import allocation
from kaquan.inventory.delivery import DeliveredCode, Viewer, codes_of_orders
from kaquan.kit.bounds import INT64_MAX, id_from_text
from kaquan.kit.errors import BadInput
from kaquan.kit.ratelimit import enforce
from kaquan.ledger import service as ledger
from kaquan.orders import service as orders
from kaquan.orders.models import Order
from kaquan.web.deps import RuntimeDep, client_ip

router = APIRouter(prefix="/open/v1", tags=["open api"])
adapter = Adapter("open_api", "signed open API for downstream agents", router)
DISPLAY_CAP = 1000
MAX_PAGE = 500
MAX_BATCH = 200


async def signed_agent(request: Request, rt: RuntimeDep) -> AgentCaller:
    """The agent whose key signed this request (see docs/open-api.md); refused otherwise.

    The path is signed as sent, still percent-encoded (the raw path, not the decoded one).
    """
    raw_path: bytes = request.scope.get("raw_path") or request.url.path.encode()
    caller = await rt.agent_auth.authenticate(
        method=request.method,
        path=raw_path.decode("latin-1").partition("?")[0],
        raw_query=request.url.query,
        body=await request.body(),
        headers=request.headers,
        ip=client_ip(request),
    )
    await enforce(
        rt.limiter, f"agent:{caller.key_id}", limit=rt.settings.agent_requests_per_s, window_s=1, what="API requests"
    )
    return caller


Caller = Annotated[AgentCaller, Depends(signed_agent)]


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out_order_no: str
    sku: str
    quantity: int  # past max_per_order (or 64 bits) it is 400 invalid_quantity, checked before any query
    mode: Literal["sync", "async"] = "sync"
    allow_partial: bool = False


def _viewer(caller: AgentCaller, request: Request) -> Viewer:
    return Viewer(f"agent:{caller.agent.code}", "open API delivery", client_ip(request))


def _order_json(order: Order, sku_code: str, caller: AgentCaller, codes: list[DeliveredCode]) -> dict[str, Any]:
    key = caller.code_key if codes else b""
    return {
        "order_no": order.number,
        "out_order_no": order.idempotency_key,
        "status": order.status,
        "sku": sku_code,
        "requested_quantity": order.requested_quantity or order.quantity,
        "quantity": order.quantity,
        "unit_price_minor": order.unit_price_minor,
        "total_minor": order.total_minor,
        "currency": order.currency,
        "created_at": order.created_at.isoformat(),
        "delivered_at": order.delivered_at.isoformat() if order.delivered_at else None,
        "codes": [
            {
                "card_no": agent_crypto.encrypt_field(key, code.card_no, order.number) if code.card_no else None,
                "secret": agent_crypto.encrypt_field(key, code.secret, order.number),
                "expires_on": code.expires_on,
            }
            for code in codes
        ],
    }


@router.get("/products")
async def products(rt: RuntimeDep, caller: Caller) -> dict[str, Any]:
    async with rt.db.read() as session:
        listed = []
        for priced in await ordering.catalogue(session, caller.agent):
            available = await allocation.available_units(session, priced.sku)
            listed.append(
                {
                    "sku": priced.sku.code,
                    "name": priced.sku.name,
                    "price_minor": priced.price_minor,
                    "currency": priced.currency,
                    "in_stock": available > 0,
                    "available": min(available, DISPLAY_CAP),
                    "max_per_order": min(priced.sku.max_per_order, rt.settings.max_per_order),
                }
            )
    return {"products": listed}


Body = TypeVar("Body", bound=BaseModel)


def _parsed(model: type[Body], raw: bytes) -> Body:
    """The request body, read after the signature was checked (an unsigned request learns nothing about it)."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise BadInput("the body is not valid JSON", field="body") from None
        raise RequestValidationError(exc.errors()) from None


@router.post("/orders", status_code=201)
async def place_order(request: Request, response: Response, rt: RuntimeDep, caller: Caller) -> dict[str, Any]:
    body = _parsed(OrderIn, await request.body())
    placed = await rt.agent_orders.place(
        caller.agent,
        ordering.AgentOrderRequest(body.out_order_no, body.sku, body.quantity, body.mode, body.allow_partial),
        _viewer(caller, request),
    )
    if not placed.created:
        response.status_code = 200
    return {"order": _order_json(placed.order, placed.sku_code, caller, placed.codes)}


class OrdersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    orders: list[OrderIn] = Field(min_length=1, max_length=MAX_BATCH)


@router.post("/orders/batch")
async def place_orders(request: Request, rt: RuntimeDep, caller: Caller) -> dict[str, Any]:
    """Up to MAX_BATCH orders in one signed request, each answered on its own (an order or an error)."""
    body = _parsed(OrdersIn, await request.body())
    numbers = [order.out_order_no for order in body.orders]
    if len(set(numbers)) != len(numbers):
        raise BadInput("each out_order_no may appear once per batch", field="orders")
    placed = await rt.agent_orders.place_many(
        caller.agent,
        [ordering.AgentOrderRequest(o.out_order_no, o.sku, o.quantity, o.mode, o.allow_partial) for o in body.orders],
        _viewer(caller, request),
    )
    results: list[dict[str, Any]] = []
    for answer in placed:
        if isinstance(answer, AgentOrder):
            order = _order_json(answer.order, answer.sku_code, caller, answer.codes)
            results.append({"status": 201 if answer.created else 200, "order": order})
        else:
            results.append({"status": answer.status, **answer.to_dict()})
    return {"results": results}


@router.get("/orders/{out_order_no}")
async def get_order(request: Request, rt: RuntimeDep, caller: Caller, out_order_no: str) -> dict[str, Any]:
    async with rt.db.transaction() as session:  # opening codes records the reveal
        order = await ordering.find(session, caller.agent, out_order_no)
        sku = await orders.sku_of(session, order)
        codes: list[DeliveredCode] = []
        if order.status == "delivered":
            opened = await codes_of_orders(session, rt.vault, [order.id], _viewer(caller, request))
            codes = opened.get(order.id, [])
        return {"order": _order_json(order, sku.code, caller, codes)}


def _cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    after_id = id_from_text(cursor, maximum=INT64_MAX)
    if after_id is None:
        raise BadInput("cursor is the next_cursor of the previous page", field="cursor")
    return after_id


def _window(since: datetime, until: datetime) -> None:
    if since.tzinfo is None or until.tzinfo is None:
        raise BadInput("since and until need a time zone (e.g. 2026-11-25T00:00:00Z)", field="since")
    if until <= since:
        raise BadInput("until must be later than since", field="until")


@router.get("/orders")
async def list_orders(
    rt: RuntimeDep,
    caller: Caller,
    since: datetime,
    until: datetime,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> dict[str, Any]:
    _window(since, until)
    async with rt.db.read() as session:
        found = await ordering.between(session, caller.agent, since, until, after_id=_cursor(cursor), limit=limit)
        skus = {order.sku_id: (await orders.sku_of(session, order)).code for order in found}
    return {
        "orders": [_order_json(order, skus[order.sku_id], caller, []) for order in found],
        "next_cursor": str(found[-1].id) if len(found) == limit else None,
    }


@router.get("/balance")
async def balance(rt: RuntimeDep, caller: Caller) -> dict[str, Any]:
    async with rt.db.read() as session:
        held = await ledger.balance(session, caller.agent.account_id)
    limit = -(held.floor_minor or 0)
    return {
        "currency": held.currency,
        "balance_minor": held.balance_minor,
        "credit_limit_minor": limit,
        "available_minor": held.balance_minor + limit,
    }


@router.get("/ledger")
async def ledger_entries(
    rt: RuntimeDep,
    caller: Caller,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> dict[str, Any]:
    if since is not None and until is not None:
        _window(since, until)
    async with rt.db.read() as session:
        found = await ledger.entries(
            session, caller.agent.account_id, since=since, until=until, after_id=_cursor(cursor), limit=limit
        )
    return {
        "entries": [
            {
                "id": entry.posting_id,
                "at": entry.at.isoformat(),
                "kind": entry.kind,
                "amount_minor": entry.amount_minor,
                "reference": entry.reference,
                "memo": entry.memo,
            }
            for entry in found
        ],
        "next_cursor": str(found[-1].posting_id) if len(found) == limit else None,
    }
