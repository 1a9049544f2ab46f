"""After sale in the console: refund an order, resend its delivery notice, finance's queue of refunds to approve.

Every action is a form post carrying the session's CSRF token (checked by `require`, as on every console
form) that lands back on the page it came from (303), where the result shows in the order's refunds.
"""

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.channels import aftersale
from kaquan.identity.permissions import Permission
from kaquan.kit.money import Money, display, parse_amount
from kaquan.kit.tables import Table
from kaquan.orders import resend
from kaquan.orders import service as orders
from kaquan.payments import chargebacks, refunds
from kaquan.payments import service as payments
from kaquan.payments.refunds import PaymentRefund
from kaquan.web.console.exports import DOWNLOADS, local, stem
from kaquan.web.console.rendering import console_router, page, safe_next
from kaquan.web.deps import Principal, RuntimeDep, require
from kaquan.web.downloads import table_download
from kaquan.web.i18n import language, translator
from kaquan.web.pages import local_time

router = console_router()

RefundsRequest = Annotated[Principal, require(Permission.REFUNDS_REQUEST)]
RefundsApprove = Annotated[Principal, require(Permission.REFUNDS_APPROVE)]
FinanceRead = Annotated[Principal, require(Permission.FINANCE_READ)]
OrdersSupport = Annotated[Principal, require(Permission.ORDERS_SUPPORT)]
QUEUE = "/admin/refunds"
QUEUE_LIMIT = 200


async def aftersale_view(session: AsyncSession, order: orders.Order) -> dict[str, Any]:
    """What the order page shows of after sale: the order's payments, refunds and chargebacks, and what may still
    go back."""
    left = await aftersale.refundable(session, order)
    return {
        "payments": await payments.of_order(session, order.id),
        "refunds": await refunds.of_order(session, order.id),
        "chargebacks": await chargebacks.of_order(session, order.id),
        "refundable": left,
        "refundable_amount": Money(left, order.currency).format().partition(" ")[2],
        "refund_route": aftersale.route_of(order),
    }


def _order_path(number: str) -> str:
    return f"/admin/orders/{number}"


def _back(target: str, default: str) -> RedirectResponse:
    return RedirectResponse(safe_next(target, default), status_code=303)


@router.post("/admin/orders/{number}/refund")
async def refund_order(
    rt: RuntimeDep,
    admin: RefundsRequest,
    number: str,
    reason: Annotated[str, Form(max_length=2000)] = "",
    amount: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """`amount` in yuan as typed (prefilled with what remains); empty: everything that remains."""
    async with rt.db.transaction() as session:
        order = await orders.by_number(session, number)
        amount_minor = parse_amount(amount, order.currency) if amount.strip() else None
        await aftersale.request_refund(
            rt.db,
            session,
            number,
            amount_minor=amount_minor,
            reason=reason,
            actor=admin.actor,
            may_approve=Permission.REFUNDS_APPROVE in admin.permissions,
            four_eyes=rt.settings.refund_four_eyes,
        )
    return _back(_order_path(number), QUEUE)


@router.post("/admin/orders/{number}/resend")
async def resend_delivery(rt: RuntimeDep, admin: OrdersSupport, number: str) -> Response:
    async with rt.db.transaction() as session:
        await resend.resend_delivery(
            session,
            rt.limiter,
            number,
            actor=admin.actor,
            per_hour=rt.settings.resends_per_order_per_hour,
            ip=admin.ip,
        )
    return _back(_order_path(number) + "?resent=1", QUEUE)


@dataclass(frozen=True)
class QueuedRefund:
    refund: PaymentRefund
    order: orders.Order


async def _queue(session: AsyncSession) -> list[QueuedRefund]:
    waiting = await refunds.awaiting_approval(session, limit=QUEUE_LIMIT)
    found = await orders.by_ids(session, [refund.order_id for refund in waiting]) if waiting else {}
    return [QueuedRefund(refund, found[refund.order_id]) for refund in waiting]


@router.get("/admin/refunds")
async def awaiting(request: Request, rt: RuntimeDep, admin: FinanceRead) -> Response:
    async with rt.db.read() as session:
        queued = await _queue(session)
    context = {"queued": queued, "four_eyes": rt.settings.refund_four_eyes, "when": local_time(request)}
    return page(request, admin, "refunds.html", context)


@router.get("/admin/refunds.{fmt}", responses=DOWNLOADS)
async def awaiting_export(
    request: Request, rt: RuntimeDep, admin: FinanceRead, fmt: Literal["csv", "xlsx"]
) -> Response:
    """The queue as the page shows it: finance works through it in a spreadsheet, or files it."""
    t, zone = translator(language(request)), rt.settings.zone()
    async with rt.db.read() as session:
        queued = await _queue(session)
    header = [t("aftersale.order"), t("aftersale.refund_no"), t("aftersale.amount"), t("orders.total")]
    header += [t("orders.currency"), t("field.reason"), t("aftersale.requested_by")]
    header += [t("audit.at_in", zone=rt.settings.timezone)]
    rows = [
        [
            q.order.number,
            q.refund.refund_no,
            display(q.refund.amount_minor, q.refund.currency),
            display(q.order.total_minor, q.order.currency),
            q.refund.currency,
            q.refund.reason,
            q.refund.requested_by,
            local(q.refund.created_at, zone),
        ]
        for q in queued
    ]
    return table_download(Table(t("export.refunds"), header, rows), fmt, stem("refunds", zone))


@router.post("/admin/refunds/{refund_no}/approve")
async def approve(
    rt: RuntimeDep, admin: RefundsApprove, refund_no: str, back: Annotated[str, Form(max_length=300)] = QUEUE
) -> Response:
    async with rt.db.transaction() as session:
        await aftersale.decide(
            rt.db, session, refund_no, approve=True, actor=admin.actor, four_eyes=rt.settings.refund_four_eyes
        )
    return _back(back, QUEUE)


@router.post("/admin/refunds/{refund_no}/reject")
async def reject(
    rt: RuntimeDep,
    admin: RefundsApprove,
    refund_no: str,
    note: Annotated[str, Form(max_length=2000)] = "",
    back: Annotated[str, Form(max_length=300)] = QUEUE,
) -> Response:
    async with rt.db.transaction() as session:
        await aftersale.decide(rt.db, session, refund_no, approve=False, actor=admin.actor, note=note)
    return _back(back, QUEUE)


@router.post("/admin/refunds/{refund_no}/retry")
async def retry(
    rt: RuntimeDep, admin: RefundsApprove, refund_no: str, back: Annotated[str, Form(max_length=300)] = QUEUE
) -> Response:
    async with rt.db.transaction() as session:
        await aftersale.retry(rt.db, session, refund_no, actor=admin.actor)
    return _back(back, QUEUE)
