"""The open API for agents (代理商): signed requests, prepaid orders, codes encrypted for the agent.

The contract, with the signing algorithm and worked examples, is docs/open-api.md.
"""

from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kaquan import ledger, settlement
from kaquan.channels import Adapter, agents, booking, schemas
from kaquan.channels.agents import AgentCaller, AgentOrder, ordering, request_signing
from kaquan.inventory import Viewer
from kaquan.kit.bounds import INT64_MAX, Int64, id_from_text
from kaquan.kit.errors import BadInput
from kaquan.kit.ratelimit import enforce
from kaquan.orders import service as orders
from kaquan.settlement.schemas import RunOut, StatementsPage
from kaquan.web.content import check_json_body
from kaquan.web.deps import RuntimeDep, client_ip
from kaquan.web.risk_gate import screen_agent_order

router = APIRouter(prefix="/open/v1", tags=["open api"])
adapter = Adapter("open_api", "signed open API for downstream agents", router)
MAX_PAGE = 500
MAX_BATCH = 200


def _error(description: str) -> dict[str, Any]:
    return {"model": schemas.ErrorOut, "description": description}


ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("bad_input, ambiguous_query or invalid_quantity"),
    401: _error(
        "missing_signature_header, invalid_nonce, invalid_timestamp, timestamp_out_of_window, "
        "unknown_key, key_revoked, invalid_signature or nonce_reused"
    ),
    402: _error("insufficient_balance"),
    403: _error("ip_not_allowed, agent_suspended, channel_inactive, risk_declined or challenge_required"),
    404: _error("sku_not_available_for_agent, order_not_found or statement_not_found"),
    409: _error("idempotency_conflict or out_of_stock"),
    413: _error("payload_too_large: a body past the shop's cap (details.max_bytes); send fewer orders per request"),
    415: _error("unsupported_media_type: a body that is not declared application/json"),
    422: _error("validation_error: a field is missing, unknown or of the wrong type"),
    429: _error("rate_limited (Retry-After)"),
    503: _error("busy (Retry-After)"),
}
"""Every error answer of the open API, documented with its codes in docs/open-api.md#errors."""
READ_ERRORS = {status: answer for status, answer in ERRORS.items() if status not in (402, 409, 413, 415)}
"""The error answers of the routes that only read (no body, no money moved)."""

_SIGNED_WITH = APIKeyHeader(
    name=request_signing.KEY_HEADER,
    scheme_name="KQ1-HMAC-SHA256",
    description=(
        "Every request carries X-Kq-Key (the key id), X-Kq-Timestamp (Unix seconds), X-Kq-Nonce (16-64 of "
        "A-Z a-z 0-9 _ -, fresh each time) and X-Kq-Signature (hex HMAC-SHA256 of the canonical string "
        "under the key's secret); see docs/open-api.md."
    ),
    auto_error=False,
)


def _header(name: str, description: str) -> Any:
    """A signature header, published as a parameter; checked by the authenticator (401, not 422, when missing)."""
    return Header(alias=name, description=f"required: {description}")


async def signed_agent(
    request: Request,
    rt: RuntimeDep,
    key: Annotated[str | None, Depends(_SIGNED_WITH)],
    timestamp: Annotated[str | None, _header(request_signing.TIMESTAMP_HEADER, "Unix time in whole seconds")] = None,
    nonce: Annotated[str | None, _header(request_signing.NONCE_HEADER, "16-64 characters of A-Z a-z 0-9 _ -")] = None,
    signature: Annotated[str | None, _header(request_signing.SIGNATURE_HEADER, "lowercase hex HMAC-SHA256")] = None,
) -> AgentCaller:
    """The agent whose key signed this request (see docs/open-api.md); refused otherwise.

    The path is signed as sent, still percent-encoded (the raw path, not the decoded one).
    The header parameters only publish the scheme in /openapi.json: the authenticator reads them itself.
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
    """An order as an agent sends it. Strict: money moves on these fields, so `"2"`, `2.0` or `"yes"` are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)

    out_order_no: str = Field(pattern=f"^{ordering.OUT_ORDER_NO.pattern}$")
    sku: str
    quantity: Int64  # past 64 bits 422 by the schema; past max_per_order 400 invalid_quantity, before any query
    mode: Literal["sync", "async"] = "sync"
    allow_partial: bool = False


def _viewer(caller: AgentCaller, request: Request) -> Viewer:
    return Viewer(f"agent:{caller.agent.code}", "open API delivery", client_ip(request))


@router.get("/products", responses=READ_ERRORS)
async def products(rt: RuntimeDep, caller: Caller) -> schemas.AgentProductsOut:
    async with rt.db.read() as session:
        return await ordering.products(session, caller.agent, max_per_order=rt.settings.max_per_order)


Body = TypeVar("Body", bound=BaseModel)


def _inlined(schema: Any, defs: dict[str, Any]) -> Any:
    """A model's JSON schema with its `$defs` references replaced by the definitions themselves."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inlined(defs[ref.removeprefix("#/$defs/")], defs)
        return {name: _inlined(value, defs) for name, value in schema.items() if name != "$defs"}
    if isinstance(schema, list):
        return [_inlined(item, defs) for item in schema]
    return schema


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The request body of a route that reads its body itself (after the signature), for /openapi.json."""
    schema = model.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inlined(schema, schema.get("$defs", {}))}},
        }
    }


async def _parsed(model: type[Body], request: Request) -> Body:
    """The request body, read after the signature was checked (an unsigned request learns nothing about it)."""
    raw = await request.body()
    check_json_body(request, raw)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise BadInput("the body is not valid JSON", field="body") from None
        raise RequestValidationError(exc.errors()) from None


@router.post(
    "/orders",
    status_code=201,
    openapi_extra=_body_schema(OrderIn),
    responses={200: {"model": schemas.OrderEnvelope, "description": "a retry: the order placed before"}, **ERRORS},
)
async def place_order(request: Request, response: Response, rt: RuntimeDep, caller: Caller) -> schemas.OrderEnvelope:
    body = await _parsed(OrderIn, request)
    await screen_agent_order(request, rt, caller.agent.code, sku=body.sku, quantity=body.quantity)
    placed = await rt.agent_orders.place(
        caller.agent,
        ordering.AgentOrderRequest(body.out_order_no, body.sku, body.quantity, body.mode, body.allow_partial),
        _viewer(caller, request),
    )
    if not placed.created:
        response.status_code = 200
    return schemas.OrderEnvelope(order=ordering.order_out(placed.order, placed.sku_code, caller, placed.codes))


class OrdersIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    orders: list[OrderIn] = Field(min_length=1, max_length=MAX_BATCH)


@router.post("/orders/batch", openapi_extra=_body_schema(OrdersIn), responses=ERRORS)
async def place_orders(request: Request, rt: RuntimeDep, caller: Caller) -> schemas.BatchOut:
    """Up to MAX_BATCH orders in one signed request, each answered on its own (an order or an error)."""
    body = await _parsed(OrdersIn, request)
    numbers = [order.out_order_no for order in body.orders]
    if len(set(numbers)) != len(numbers):
        raise BadInput("each out_order_no may appear once per batch", field="orders")
    skus = {order.sku for order in body.orders}
    units = sum(order.quantity for order in body.orders)
    await screen_agent_order(
        request, rt, caller.agent.code, sku=next(iter(skus)) if len(skus) == 1 else None, quantity=units
    )
    placed = await rt.agent_orders.place_many(
        caller.agent,
        [ordering.AgentOrderRequest(o.out_order_no, o.sku, o.quantity, o.mode, o.allow_partial) for o in body.orders],
        _viewer(caller, request),
    )
    results: list[schemas.BatchOrderPlaced | schemas.BatchOrderRefused] = []
    for answer in placed:
        if isinstance(answer, AgentOrder):
            order = ordering.order_out(answer.order, answer.sku_code, caller, answer.codes)
            results.append(schemas.BatchOrderPlaced(status=201 if answer.created else 200, order=order))
        else:
            error = schemas.ErrorDetail(code=answer.code, message=answer.message, details=answer.details)
            results.append(schemas.BatchOrderRefused(status=answer.status, error=error))
    return schemas.BatchOut(results=results)


@router.get("/orders/{out_order_no}", responses=READ_ERRORS)
async def get_order(request: Request, rt: RuntimeDep, caller: Caller, out_order_no: str) -> schemas.OrderEnvelope:
    async with rt.db.transaction() as session:  # opening codes records the reveal
        return schemas.OrderEnvelope(
            order=await ordering.opened(session, rt.vault, caller, out_order_no, _viewer(caller, request))
        )


def _cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    after_id = id_from_text(cursor, maximum=INT64_MAX)
    if after_id is None:
        raise BadInput("cursor is the next_cursor of the previous page", field="cursor")
    return after_id


def _window(since: datetime | None, until: datetime | None) -> None:
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise BadInput(f"{name} needs a time zone (e.g. 2026-11-25T00:00:00Z)", field=name)
    if since is not None and until is not None and until <= since:
        raise BadInput("until must be later than since", field="until")


@router.get("/orders", responses=READ_ERRORS)
async def list_orders(
    rt: RuntimeDep,
    caller: Caller,
    since: datetime,
    until: datetime,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> schemas.OrdersPage:
    _window(since, until)
    async with rt.db.read() as session:
        found = await ordering.between(session, caller.agent, since, until, after_id=_cursor(cursor), limit=limit)
        skus = {order.sku_id: (await orders.sku_of(session, order)).code for order in found}
    return schemas.OrdersPage(
        orders=[schemas.order_summary(order, skus[order.sku_id]) for order in found],
        next_cursor=str(found[-1].id) if len(found) == limit else None,
    )


@router.get("/balance", responses=READ_ERRORS)
async def balance(rt: RuntimeDep, caller: Caller) -> schemas.BalanceOut:
    async with rt.db.read() as session:
        return await agents.funds(session, caller.agent)


@router.get("/ledger", responses=READ_ERRORS)
async def ledger_entries(
    rt: RuntimeDep,
    caller: Caller,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> schemas.LedgerPage:
    _window(since, until)
    async with rt.db.read() as session:
        found = await ledger.entries(
            session, caller.agent.account_id, since=since, until=until, after_id=_cursor(cursor), limit=limit
        )
        shown = [booking.as_agent_sees_it(caller.agent, entry.kind, entry.reference) for entry in found]
        numbers = {seen.order_no for seen in shown if seen.order_no is not None}
        out_order_nos = await ordering.out_order_nos(session, caller.agent, numbers)
    return schemas.LedgerPage(
        entries=[
            schemas.LedgerEntryOut(
                id=entry.posting_id,
                at=entry.at,
                kind=entry.kind,
                amount_minor=entry.amount_minor,
                reference=seen.reference,
                memo=entry.memo,
                out_order_no=None if seen.order_no is None else out_order_nos.get(seen.order_no),
            )
            for entry, seen in zip(found, shown, strict=True)
        ],
        next_cursor=str(found[-1].posting_id) if len(found) == limit else None,
    )


def _counterparty(caller: AgentCaller) -> str:
    return f"agent:{caller.agent.code}"


@router.get("/statements", responses=READ_ERRORS)
async def statements(
    rt: RuntimeDep, caller: Caller, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100
) -> StatementsPage:
    """Your confirmed settlement statements (结算单), newest first, without their lines."""
    async with rt.db.read() as session:
        found = await settlement.list_runs(session, counterparty=_counterparty(caller), status="confirmed", limit=limit)
    return StatementsPage(statements=[RunOut.of(run) for run in found])


@router.get("/statements/{statement_id}", responses=READ_ERRORS)
async def statement(rt: RuntimeDep, caller: Caller, statement_id: Int64) -> RunOut:
    """One of your confirmed statements with its lines; another agent's is 404 statement_not_found."""
    async with rt.db.read() as session:
        run = await settlement.statement_of(session, _counterparty(caller), statement_id)
        shown = RunOut.of(run, await settlement.lines_of(session, run.id))
    for line in shown.lines or []:  # references as the agent knows them, as on GET /open/v1/ledger
        line.reference = booking.as_agent_sees_it(caller.agent, line.kind, line.reference).reference
    return shown


def _file_answer(media_type: str, what: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"description": f"the statement as {what}", "content": {media_type: {"schema": {"type": "string"}}}}}


async def _statement_file(rt: RuntimeDep, caller: AgentCaller, statement_id: int, fmt: str) -> Response:
    async with rt.db.read() as session:
        run = await settlement.statement_of(session, _counterparty(caller), statement_id)
        found = await settlement.statement_file(session, run, fmt)
    return Response(
        found.content,
        media_type=found.media_type,
        headers={"Content-Disposition": f'attachment; filename="{found.filename}"'},
    )


@router.get(
    "/statements/{statement_id}/csv",
    responses={**READ_ERRORS, **_file_answer("text/csv", "CSV")},
    response_class=Response,
)
async def statement_csv(rt: RuntimeDep, caller: Caller, statement_id: Int64) -> Response:
    """One of your confirmed statements as CSV (UTF-8 with BOM, Chinese headers first)."""
    return await _statement_file(rt, caller, statement_id, "csv")


@router.get(
    "/statements/{statement_id}/xlsx",
    responses={**READ_ERRORS, **_file_answer(settlement.FORMATS["xlsx"][0], "XLSX")},
    response_class=Response,
)
async def statement_xlsx(rt: RuntimeDep, caller: Caller, statement_id: Int64) -> Response:
    """One of your confirmed statements as XLSX (sheets 结算单 and 明细)."""
    return await _statement_file(rt, caller, statement_id, "xlsx")


@router.get(
    "/statements/{statement_id}/pdf",
    responses={**READ_ERRORS, **_file_answer("application/pdf", "PDF")},
    response_class=Response,
)
async def statement_pdf(rt: RuntimeDep, caller: Caller, statement_id: Int64) -> Response:
    """One of your confirmed statements as PDF (Chinese and English labels)."""
    return await _statement_file(rt, caller, statement_id, "pdf")


CALLBACKS = {
    "order.processing": "an async order was accepted and paid; its codes follow with order.delivered",
    "order.delivered": "the order's codes are ready: fetch them with GET /open/v1/orders/{out_order_no}",
    "order.refunded": "the order was refunded to your balance (out of stock when filled, or an after-sale refund)",
}


async def _callback(
    event: schemas.CallbackEvent,
    webhook_id: Annotated[str, Header(alias="webhook-id", description="the event's id, the same on every retry")],
    webhook_timestamp: Annotated[str, Header(alias="webhook-timestamp", description="Unix seconds of this try")],
    webhook_signature: Annotated[
        str, Header(alias="webhook-signature", description="v1,<base64 HMAC-SHA256>, space-separated")
    ],
) -> None:
    """Answer any 2xx quickly; 410 Gone stops the callbacks; anything else is retried (docs/open-api.md#callbacks)."""


def publish_callbacks(app: FastAPI) -> None:
    """The callbacks kaquan POSTs to an agent's notify URL, in /openapi.json's `webhooks` (OpenAPI 3.1)."""
    for event_type, description in CALLBACKS.items():
        app.webhooks.add_api_route(
            event_type,
            _callback,
            methods=["POST"],
            summary=event_type,
            description=description,
            operation_id=f"callback_{event_type.replace('.', '_')}",
            tags=["open api callbacks"],
        )
