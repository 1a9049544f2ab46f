"""The admin API for after sale: refund any order, finance's approvals, retries, and resending a delivery."""

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.channels import aftersale
from kaquan.identity.permissions import Permission
from kaquan.kit.bounds import Int32
from kaquan.orders import resend
from kaquan.orders import service as orders
from kaquan.payments import refunds
from kaquan.payments.refunds import PaymentRefund
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import Principal, RuntimeDep, require

router = APIRouter(prefix="/admin/api", tags=["after sale"], dependencies=JSON_ONLY)

RefundsRequest = Annotated[Principal, require(Permission.REFUNDS_REQUEST)]
RefundsApprove = Annotated[Principal, require(Permission.REFUNDS_APPROVE)]
FinanceRead = Annotated[Principal, require(Permission.FINANCE_READ)]
OrdersSupport = Annotated[Principal, require(Permission.ORDERS_SUPPORT)]

IsoTime = Annotated[
    datetime,
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
RefundStatus = Literal["awaiting_approval", "requested", "processing", "succeeded", "failed", "rejected"]


class _Body(BaseModel):
    """Strict: these bodies move money, so `"100"` for an amount is refused, not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


class RefundIn(_Body):
    """`amount_minor` omitted: everything left to refund (the whole order for marketplace and agent orders)."""

    amount_minor: Int32 | None = Field(default=None, gt=0)
    reason: str = Field(min_length=1, max_length=refunds.MAX_REASON)


class DecisionIn(_Body):
    note: str = Field(default="", max_length=aftersale.MAX_NOTE)


class RefundOut(BaseModel):
    """A refund. `refund_no` is None for marketplace and agent refunds, which have no gateway record and are
    done at once; `route` says which way the money went back."""

    model_config = ConfigDict(extra="forbid")

    refund_no: str | None
    order_number: str
    route: Literal["gateway", "marketplace", "agent"]
    status: RefundStatus
    amount_minor: int
    currency: str
    reason: str
    requested_by: str
    approved_by: str | None
    detail: str | None
    order_status: str
    created_at: IsoTime | None
    finished_at: IsoTime | None


class ResendOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str
    status: str
    resent: bool


def _of_record(refund: PaymentRefund, order: orders.Order) -> RefundOut:
    return RefundOut(
        refund_no=refund.refund_no,
        order_number=order.number,
        route="gateway",
        status=refund.status,
        amount_minor=refund.amount_minor,
        currency=refund.currency,
        reason=refund.reason,
        requested_by=refund.requested_by,
        approved_by=refund.approved_by,
        detail=refund.detail,
        order_status=order.status,
        created_at=refund.created_at,
        finished_at=refund.finished_at,
    )


async def _out(session: AsyncSession, refund: PaymentRefund) -> RefundOut:
    return _of_record(refund, await orders.by_id(session, refund.order_id))


@router.post("/orders/{number}/refunds", status_code=201)
async def refund_order(rt: RuntimeDep, admin: RefundsRequest, number: str, body: RefundIn) -> RefundOut:
    """Refund an order by the way its channel took the money: through its gateway (waiting for finance's
    approval unless the caller may approve), or at once against a marketplace's receivable or an agent's deposit."""
    async with rt.db.transaction() as session:
        done = await aftersale.request_refund(
            rt.db,
            session,
            number,
            amount_minor=body.amount_minor,
            reason=body.reason,
            actor=admin.actor,
            may_approve=Permission.REFUNDS_APPROVE in admin.permissions,
            four_eyes=rt.settings.refund_four_eyes,
        )
        if done.refund is not None:
            return _of_record(done.refund, done.order)
        return RefundOut(
            refund_no=None,
            order_number=done.order.number,
            route=done.route,
            status="succeeded",
            amount_minor=done.amount_minor,
            currency=done.currency,
            reason=body.reason.strip(),
            requested_by=admin.actor,
            approved_by=admin.actor,
            detail=None,
            order_status=done.order.status,
            created_at=None,
            finished_at=None,
        )


@router.get("/refunds")
async def list_refunds(
    rt: RuntimeDep,
    admin: FinanceRead,
    status: RefundStatus = "awaiting_approval",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[RefundOut]:
    """Gateway refunds in one state, oldest first: by default finance's queue of refunds awaiting approval."""
    async with rt.db.read() as session:
        return [await _out(session, refund) for refund in await refunds.with_status(session, status, limit=limit)]


@router.post("/refunds/{refund_no}/approve")
async def approve_refund(rt: RuntimeDep, admin: RefundsApprove, refund_no: str, body: DecisionIn) -> RefundOut:
    async with rt.db.transaction() as session:
        refund = await aftersale.decide(
            rt.db,
            session,
            refund_no,
            approve=True,
            actor=admin.actor,
            note=body.note,
            four_eyes=rt.settings.refund_four_eyes,
        )
        return await _out(session, refund)


@router.post("/refunds/{refund_no}/reject")
async def reject_refund(rt: RuntimeDep, admin: RefundsApprove, refund_no: str, body: DecisionIn) -> RefundOut:
    """A rejection needs a note saying why."""
    async with rt.db.transaction() as session:
        refund = await aftersale.decide(rt.db, session, refund_no, approve=False, actor=admin.actor, note=body.note)
        return await _out(session, refund)


@router.post("/refunds/{refund_no}/retry")
async def retry_refund(rt: RuntimeDep, admin: RefundsApprove, refund_no: str) -> RefundOut:
    """Send a failed refund to its gateway again, under the same refund number (never paid out twice)."""
    async with rt.db.transaction() as session:
        return await _out(session, await aftersale.retry(rt.db, session, refund_no, actor=admin.actor))


@router.post("/orders/{number}/resend")
async def resend_delivery(rt: RuntimeDep, admin: OrdersSupport, number: str) -> ResendOut:
    """Send a delivered order's delivery notice to its buyer's contact again (rate-limited per order)."""
    async with rt.db.transaction() as session:
        order = await resend.resend_delivery(
            session,
            rt.limiter,
            number,
            actor=admin.actor,
            per_hour=rt.settings.resends_per_order_per_hour,
            ip=admin.ip,
        )
        return ResendOut(number=order.number, status=order.status, resent=True)
